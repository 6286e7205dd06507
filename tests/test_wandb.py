"""W&B logging works offline, never waits for a login, and records images and the set."""

from __future__ import annotations

import pytest

from src.pipelines.distill import run_distill
from tests.helpers import TINY, compose_cfg


@pytest.fixture
def no_wandb_account(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for key in ("WANDB_API_KEY", "WANDB_ENTITY"):
        monkeypatch.delenv(key, raising=False)


def test_offline_wandb_run_holds_metrics_images_and_the_artifact(
    tmp_path, no_wandb_account, capsys
):
    overrides = [o for o in TINY if o != "logger=none"]
    cfg = compose_cfg(
        "distill",
        # log_every_n_steps 1: the loss is logged as a metric at every one of the 3 iterations
        # (at the default 10 only the console output, which W&B also records, holds it).
        [*overrides, "logger=wandb", "eval.random_baseline=false", "trainer.log_every_n_steps=1",
         "geometry.real_per_class=20", f"paths.output_dir={tmp_path / 'run'}"],
    )  # fmt: skip
    run_distill(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = {p.name for p in runs[0].rglob("*")}
    assert any(name.startswith("distilled_") and name.endswith(".png") for name in files)
    assert any(name.startswith("poincare_after_") for name in files)
    # The offline log (transaction file) records the summary keys and the artifact.
    blob = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
    for key in (
        b"final/distilled_acc_mean",
        b"distilled-set",
        b"distilled.safetensors",
        b"batch_real",
        b"train/loss",
        b"final/distilled_acc_net0",
    ):
        assert key in blob, key  # summary, artifact, the config, the loss curve, per network
    assert f"upload it with: wandb sync {runs[0]}" in capsys.readouterr().out


def test_the_grid_over_time_is_written_and_logged(tmp_path, no_wandb_account):
    overrides = [o for o in TINY if o != "logger=none"]
    out = tmp_path / "run"
    cfg = compose_cfg(
        "distill",
        [*overrides, "logger=wandb", "grid_every=1", "eval.final=false",
         "eval.random_baseline=false", "geometry.enabled=false", f"paths.output_dir={out}"],
    )  # fmt: skip
    run_distill(cfg)
    grids = sorted(p.name for p in (out / "grids").glob("*.png"))
    assert grids == [f"iteration_{i:06d}.png" for i in (1, 2, 3)]
    assert (out / "grids" / grids[0]).read_bytes() != (out / "grids" / grids[-1]).read_bytes()
    run = next((out / "wandb").glob("offline-run-*"))
    assert sum(p.name.startswith("grid_") for p in run.rglob("*.png")) == 3


def test_runs_of_one_sweep_share_a_wandb_group(tmp_path, no_wandb_account):
    from tests.helpers import run_module

    sweep = tmp_path / "mysweep"
    res = run_module(
        "src.distill", "-m", "seed=0,1", "dataset=fashion_mnist", "ipc=1", "iterations=2",
        "model.width=8", "method.batch_real=4", "logger=wandb", "eval.final=false",
        "eval.random_baseline=false", "geometry.enabled=false", f"hydra.sweep.dir={sweep}",
        run_dir=tmp_path / "unused",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    runs = sorted(sweep.glob("*/wandb/offline-run-*"))
    assert len(runs) == 2
    for run in runs:
        blob = b"".join(p.read_bytes() for p in run.glob("*.wandb"))
        assert b"distill-mysweep" in blob  # the group
        assert f"seed={run.parents[1].name[-1]}".encode() in blob  # the point's name
