"""A study as configuration: a Hydra sweep whose runs are reused from their directories or
from the committed record, with the record's settings checked (src/pipelines/study.py)."""

from __future__ import annotations

import json
import shutil

from src.pipelines.report import run_report
from tests.helpers import EVAL_TINY, compose_cfg, problem_lines, run_module

GRID = ["ipc=1", "method=dm", "loss=euclidean,lorentz", "seed=0,1"]


def _sweep(tmp_path, *extra, grid=GRID):
    """The dm_family study on a tiny budget and 2 x 2 cells, into ``tmp_path``."""
    return run_module(
        "src.distill", "-m", "experiment=study/dm_family", *grid, *EVAL_TINY, "iterations=2",
        "method.batch_real=8", "eval.epochs=1", f"study.record={tmp_path / 'record.json'}",
        f"hydra.sweep.dir={tmp_path / 'runs'}", *extra, run_dir=tmp_path / "unused",
    )  # fmt: skip


def test_a_study_runs_records_and_reuses_its_runs(tmp_path):
    first = _sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads((tmp_path / "record.json").read_text())
    runs = record["runs"]
    assert len(runs) == 4 and all("/ipc1/dm/" in key for key in runs)
    labels = sorted(entry["results"]["label"] for entry in runs.values())
    assert labels == ["DM", "DM", "DM+HDD", "DM+HDD"]
    entry = runs[next(k for k in runs if k.endswith("lorentz/seed1"))]
    assert "seed=1" in entry["overrides"] and entry["settings"]["seed"] == 1
    # One baseline per seed is trained; the other loss's run of that seed takes it from the record.
    assert first.stdout.count("the same images and protocol are in the study record") == 2
    for seed in (0, 1):
        same_seed = [e["results"] for k, e in runs.items() if k.endswith(f"seed{seed}")]
        assert same_seed[0]["random_real_key"] == same_seed[1]["random_real_key"]
        assert same_seed[0]["random_real"] == same_seed[1]["random_real"]
    assert len({e["results"]["random_real_key"] for e in runs.values()}) == 2
    # Each set's digest is recorded: the two losses distil different sets, each seed its own.
    assert len({e["results"]["set_sha256"] for e in runs.values()}) == 4

    # Finished in their directories: reused, nothing distilled again.
    again = _sweep(tmp_path)
    assert again.returncode == 0 and again.stdout.count("reused the finished run") == 4

    # A fresh clone has the committed record but no run directories: still nothing to run.
    shutil.rmtree(tmp_path / "runs")
    fresh = _sweep(tmp_path)
    assert fresh.returncode == 0 and fresh.stdout.count("reused the finished run") == 4
    assert not list((tmp_path / "runs").rglob("distilled.safetensors"))

    # The report reads the record: one column per label, 2 seeds x 1 network each.
    table = run_report([tmp_path / "record.json"])
    assert "| DM | DM+HDD |" in table.splitlines()[0]
    assert table.splitlines()[2].count("(2)") == 3  # random real, DM, DM+HDD

    # By method: a row per method, a column per loss, mean ± std over the 2 seeds.
    lines = run_report([tmp_path / "record.json"], tmp_path, "family", by_method=True).splitlines()
    assert lines[:4] == ["fashion_mnist IPC 1", "", "| method | own loss | +HDD |", "|---|---|---|"]
    assert lines[4].startswith("| random real | ") and lines[4].endswith(" (2) | — |")
    assert lines[5].startswith("| DM | ") and lines[5].count("(2)") == 2
    assert (tmp_path / "family.png").stat().st_size > 0 and (tmp_path / "family.md").is_file()


def test_a_record_made_with_other_settings_is_refused(tmp_path):
    one = ["ipc=1", "method=dm", "loss=euclidean", "seed=0"]
    assert _sweep(tmp_path, grid=one).returncode == 0
    shutil.rmtree(tmp_path / "runs")
    other = _sweep(tmp_path, "method.lr_img=2.0", grid=one)
    assert other.returncode == 1
    assert any(
        "holds run" in line and "method.lr_img" in line for line in problem_lines(other.stderr)
    )


def test_the_study_config_names_its_grid_and_record():
    cfg = compose_cfg("distill", ["experiment=study/dm_family"])
    assert (cfg.iterations, cfg.method.batch_real, cfg.eval.num_models, cfg.eval.epochs) == (
        200, 64, 3, 300
    )  # fmt: skip
    assert cfg.study.record == "bench/results/dm_family.json"
    assert cfg.resume == "auto" and cfg.reuse is True


def test_the_expert_rows_have_their_own_configs_budgets_and_directories():
    def row(*overrides):
        cfg = compose_cfg("distill", ["ipc=1", *overrides])
        return cfg, cfg.study.row

    dance, name = row("experiment=study/dm_family_dance")
    assert name == "dance" and (dance.method.experts.num_experts, dance.method.experts.epochs) == (
        5, 4
    )  # fmt: skip
    ncfm, with_term = row("experiment=study/dm_family_ncfm")
    assert ncfm.method.experts == dance.method.experts  # one shared pool
    assert (ncfm.method.mean_weight, ncfm.method.real_batch) == (1.0, "random")
    _, released = row("experiment=study/dm_family_ncfm", "method.mean_weight=0")
    assert with_term != released  # NCFM as released has its own directory and row
    iid, name = row("experiment=study/dm_family_iid")
    assert name == "iid" and iid.method.experts.num_experts == 2
    _, name = row("experiment=study/dm_family_iid", "method=idm_iid")
    assert name == "idm_iid"


def test_a_baseline_key_changes_with_the_images_labels_and_protocol():
    import torch

    from src.pipelines.study import baseline_key

    images, labels = torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])
    key = baseline_key(images, labels, {"epochs": 300})
    assert key == baseline_key(images.clone(), labels.clone(), {"epochs": 300})
    assert key != baseline_key(images + 1e-3, labels, {"epochs": 300})
    assert key != baseline_key(images, labels.flip(0), {"epochs": 300})
    assert key != baseline_key(images, labels, {"epochs": 299})


def test_record_keys_are_relative_to_the_repository_so_a_record_holds_in_any_clone():
    from src.pipelines.study import run_key
    from tests.helpers import ROOT

    cfg = compose_cfg("distill", [f"paths.output_dir={ROOT / 'outputs' / 'studies' / 'x'}"])
    assert run_key(cfg) == "outputs/studies/x"


def test_the_full_protocol_study_is_the_field_budget():
    cfg = compose_cfg("distill", ["experiment=study/fashion_mnist_full_cpu"])
    assert (cfg.dataset.name, cfg.ipc, cfg.seed, cfg.iterations) == ("fashion_mnist", 10, 0, 20000)
    assert (cfg.method.batch_real, cfg.eval.num_models, cfg.eval.epochs) == (256, 5, 1000)
    assert cfg.trainer.precision == "32-true" and cfg.resume == "auto"
    assert cfg.study.record == "bench/results/fashion_mnist_full_cpu.json"


def test_a_killed_study_resumes_its_interrupted_run(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import REPO

    cells = ["ipc=1", "method=dm", "loss=euclidean,lorentz", "seed=0", "iterations=300",
             "checkpoint.every=2", "method.batch_real=8", *EVAL_TINY, "eval.epochs=1",
             f"study.record={tmp_path / 'record.json'}",
             f"hydra.sweep.dir={tmp_path / 'runs'}"]  # fmt: skip
    argv = [sys.executable, "-m", "src.distill", "-m", "experiment=study/dm_family", *cells]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    run = tmp_path / "runs" / "ipc1" / "dm" / "euclidean" / "seed0"
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.ckpt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # no SIGTERM checkpoint: the rolling one must do
    killed.wait()
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "results.json").exists()

    again = run_module("src.distill", "-m", "experiment=study/dm_family", *cells,
                       run_dir=tmp_path / "unused")  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("resuming from") == 1
    runs = json.loads((tmp_path / "record.json").read_text())["runs"]
    assert sorted(k.split("/")[-2] for k in runs) == ["euclidean", "lorentz"]
