"""Multi-device distillation through Lightning's DDP (two CPU processes over gloo)."""

from __future__ import annotations

import pytest
import torch

from src.errors import ConfigError
from src.io import load_distilled
from src.pipelines.validate import validate_distill
from tests.conftest import compose_cfg
from tests.test_cli import run_module

TINY = ["dataset=fashion_mnist", "ipc=2", "iterations=3", "model.width=8",
        "method.batch_real=4", "logger=none", "eval.num_models=1", "eval.epochs=2",
        "eval.random_baseline=false", "geometry.real_per_class=10"]  # fmt: skip


def test_two_process_ddp_run_writes_one_set_like_a_single_device_run(tmp_path):
    ddp = run_module("src.distill", "trainer=ddp_cpu", *TINY, run_dir=tmp_path / "ddp")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_module("src.distill", "trainer=cpu", *TINY, run_dir=tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    a = load_distilled(tmp_path / "ddp" / "distilled.safetensors")
    b = load_distilled(tmp_path / "single" / "distilled.safetensors")
    assert a.images.shape == b.images.shape and torch.equal(a.labels, b.labels)
    assert set(a.meta) == set(b.meta)
    same = {k for k in a.meta if k != "config" and a.meta[k] == b.meta[k]}
    assert same == set(a.meta) - {"config"}
    assert a.meta["config"]["trainer"]["devices"] == 2
    # Rank 1 matched its own real batches, so the averaged gradients moved the set elsewhere.
    assert not torch.equal(a.images, b.images)
    # One set, one results file, written by rank 0 only.
    assert len(list((tmp_path / "ddp").rglob("distilled.safetensors"))) == 1
    assert (tmp_path / "ddp" / "results.json").is_file()


def test_idm_under_ddp_is_refused_before_the_run(tmp_path):
    cfg = compose_cfg("distill", ["method=idm", "trainer=ddp_cpu", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="method=idm runs on one device"):
        validate_distill(cfg)
