"""trainer=cpu_bf16: the networks run in bfloat16, the images and the losses do not."""

from __future__ import annotations

import torch
from torch import nn

from src.io import load_distilled
from src.pipelines.distill import run_distill
from tests.helpers import TINY, compose_cfg


def test_under_cpu_bf16_the_networks_run_in_bf16_and_the_set_stays_float32(tmp_path):
    seen: list[torch.dtype] = []

    def record(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            seen.append(output.dtype)

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        results = run_distill(compose_cfg("distill", [*TINY, "trainer=cpu_bf16", "loss=lorentz",
                                                      "geometry.enabled=false",
                                                      "geometry.diagnostics=false",
                                                      f"paths.output_dir={tmp_path}"]))  # fmt: skip
    finally:
        handle.remove()
    # Distillation and evaluation networks (the geometry diagnostics, off here, run outside
    # the training step: in float32).
    assert seen and set(seen) == {torch.bfloat16}
    saved = load_distilled(tmp_path / "distilled.safetensors")
    assert saved.images.dtype == torch.float32 and torch.isfinite(saved.images).all()
    assert saved.meta["config"]["trainer"]["precision"] == "bf16-mixed"
    assert 0.0 <= results["distilled"]["mean"] <= 100.0


def test_bf16_on_a_cpu_without_native_bf16_is_named_slow(monkeypatch):
    from src.compute import precision

    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: False)
    assert "use trainer=cpu" in precision.slow_precision("cpu", "bf16-mixed")
    assert precision.slow_precision("cpu", "32-true") is None
    assert precision.slow_precision("gpu", "bf16-mixed") is None
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: True)
    assert precision.slow_precision("cpu", "bf16-mixed") is None


def test_validation_warns_once_about_slow_bf16(monkeypatch, caplog, tmp_path):
    from src.compute import precision
    from src.pipelines.validate import validate_distill

    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: False)
    cfg = compose_cfg("distill", [*TINY, "trainer=cpu_bf16", f"paths.output_dir={tmp_path}"])
    with caplog.at_level("WARNING", logger=precision.__name__):
        validate_distill(cfg)
    assert len([r for r in caplog.records if "reference kernel" in r.getMessage()]) == 1
