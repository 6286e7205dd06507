"""W&B logging works offline, never waits for a login, and records images and the set."""

from __future__ import annotations

import pytest

from src.pipelines.distill import run_distill
from tests.conftest import TINY, compose_cfg


@pytest.fixture
def no_wandb_account(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for key in ("WANDB_API_KEY", "WANDB_ENTITY"):
        monkeypatch.delenv(key, raising=False)


def test_offline_wandb_run_holds_metrics_images_and_the_artifact(tmp_path, no_wandb_account):
    overrides = [o for o in TINY if o != "logger=none"]
    cfg = compose_cfg(
        "distill",
        [*overrides, "logger=wandb", "eval.random_baseline=false",
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
    for key in (b"final/distilled_acc_mean", b"distilled-set", b"distilled.safetensors"):
        assert key in blob, key
