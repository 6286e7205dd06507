"""Hydra launchers for sweeps: local parallel jobs (joblib) and SLURM (submitit)."""

from __future__ import annotations

import json
import os

from hydra import compose, initialize_config_dir

from src.cli import threads_per_job
from src.io import load_distilled
from tests.helpers import CONF, TINY, run_module

TINY_SWEEP = [*TINY, "ipc=1", "iterations=2", "method.batch_real=4", "eval.final=false",
              "eval.random_baseline=false", "geometry.enabled=false"]  # fmt: skip


def _launcher(name: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("distill", [f"hydra/launcher={name}"], return_hydra_config=True)
    return cfg.hydra.launcher


def test_launcher_configs_select_the_plugins():
    local = _launcher("local_parallel")
    assert local._target_.endswith("joblib_launcher.JoblibLauncher")
    assert (local.n_jobs, local.backend) == (2, "loky")
    slurm = _launcher("slurm")
    assert slurm._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (slurm.gpus_per_node, slurm.tasks_per_node, slurm.max_num_timeout) == (1, 1, 3)
    assert slurm.submitit_folder.endswith("/.submitit/%j")  # beside the sweep's results


def test_local_parallel_sweep_runs_every_point_in_its_own_process(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_module(
        "src.distill", "-m", "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2",
        "seed=0,1", *TINY_SWEEP, f"hydra.sweep.dir={sweep}", run_dir=tmp_path / "unused",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    sets = sorted(sweep.glob("*/distilled.safetensors"))
    names = [p.parent.name for p in sets]
    assert len(names) == 2 and names[0].startswith("0_") and names[1].startswith("1_")
    seeds = [load_distilled(p).meta["seed"] for p in sets]
    assert seeds == [0, 1]
    # Two jobs share the cores instead of each taking all of them.
    share = threads_per_job(2, len(os.sched_getaffinity(0)))
    threads = [json.loads((p.parent / "results.json").read_text())["threads"] for p in sets]
    assert threads == [share, share]
    assert "Joblib.Parallel(n_jobs=2" in res.stdout + res.stderr


def test_parallel_jobs_split_the_cores_as_joblib_counts_them():
    assert [threads_per_job(n, 16) for n in (1, 2, 3, 4, 16, 32)] == [16, 8, 5, 4, 1, 1]
    assert threads_per_job(-1, 16) == 1  # one job per core
    assert threads_per_job(-9, 16) == 2  # 8 jobs
    assert threads_per_job(-100, 16) == 16  # never fewer than one job
