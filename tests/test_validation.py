"""Every invalid config value is refused before the run starts, one line per problem."""

from __future__ import annotations

import pytest

from src.errors import ConfigError
from src.pipelines.validate import validate_distill
from tests.helpers import compose_cfg, problem_lines, run_module

BASE = ["dataset=fashion_mnist", "ipc=10"]
CASES = [
    ("dataset.name=nosuch", "nosuch"),
    ("ipc=0", "ipc must be an integer >= 1, got 0"),
    ("ipc=7000", "ipc=7000 needs 7000 real images per class"),
    ("iterations=-5", "iterations must be an integer >= 1"),
    ("seed=-1", "seed must be an integer >= 0"),
    ("checkpoint.every=0", "checkpoint.every must be an integer >= 1"),
    ("method.batch_real=0", "method.batch_real must be an integer >= 1"),
    ("method.lr_img=0", "method.lr_img must be a number > 0"),
    ("method.momentum=1.0", "method.momentum must lie in [0, 1)"),
    ("method.init=zeros", "method.init must be one of real, noise"),
    ("method.factor=3", "method.factor=3 does not divide fashion_mnist's 28x28 images"),
    ("hdd.k=-1", "loss.k must be > 0, got -1"),  # the loss reads the method's HDD default
    ("loss.k=0", "loss.k must be > 0"),
    ("loss.scale=0", "loss.scale must be a number > 0"),
    ("prune=hyperbolic prune.keep_ratio=0", "prune.keep_ratio must lie in (0, 1]"),
    ("prune=random prune.keep_ratio=1.5", "prune.keep_ratio must lie in (0, 1]"),
    ("prune=hyperbolic prune.criterion=median", "unknown prune.criterion 'median'"),
    ("prune=hyperbolic prune.num_nets=0", "prune.num_nets must be >= 1"),
    ("model=nosuch", "Could not find 'model/nosuch'"),
    ("dataset=nosuch", "Could not find 'dataset/nosuch'"),
    ("model.norm=weird", "unknown norm 'weird'"),
    ("augment.strategy=color_warp", "warp"),
    ("eval.num_models=0", "eval.num_models must be an integer >= 1"),
    ("eval.lr=-0.1", "eval.lr must be a number > 0"),
    ("eval.train_chunk=all", "eval.train_chunk must be auto or an int >= 1, got 'all'"),
    ("eval.test_chunk=0", "eval.test_chunk must be auto or an int >= 1, got 0"),
    ("eval.eval_at=[0]", "eval.eval_at entries must lie in [1, iterations]"),
    ("geometry.classes=[10]", "geometry.classes entries must lie in [0, 10)"),
    ("trainer.accelerator=tpu", "trainer.accelerator must be one of"),
    ("trainer.devices=0", "trainer.devices must be"),
    ("resume=/no/such/checkpoint", "no checkpoint at '/no/such/checkpoint"),
    ("method=idm method.add_net_every=0", "method.add_net_every must be"),
    ("method=idm method.ce_weight=-1", "method.ce_weight must lie in [0, inf)"),
    ("method=idm ipc=1501", "needs 6004 real images per class"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES)
def test_each_invalid_value_is_rejected_with_its_message(tmp_path, overrides, message):
    if overrides.startswith(("model=nosuch", "dataset=nosuch")):
        with pytest.raises(Exception, match=message):  # Hydra itself refuses to compose
            compose_cfg("distill", [*BASE, overrides])
        return
    cfg = compose_cfg("distill", [*BASE, *overrides.split(), f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError) as info:
        validate_distill(cfg)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1  # that value alone is wrong


def test_a_valid_config_passes(tmp_path):
    for method in ("dm", "idm"):
        validate_distill(compose_cfg("distill", [*BASE, f"method={method}",
                                                 f"paths.output_dir={tmp_path}"]))  # fmt: skip


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        validate_distill(compose_cfg("distill", [*BASE, f"paths.output_dir={target}"]))


def test_all_problems_are_reported_at_once_one_line_each_before_any_output(tmp_path):
    run_dir = tmp_path / "run"
    res = run_module(
        "src.distill", *BASE, "ipc=0", "method.lr_img=-1", "loss.k=0", "eval.epochs=0",
        run_dir=run_dir,
    )  # fmt: skip
    assert res.returncode == 2
    lines = problem_lines(res.stderr)
    assert lines == [
        "error: ipc must be an integer >= 1, got 0",
        "error: method.lr_img must be a number > 0, got -1",
        "error: loss.k must be > 0, got 0",
        "error: eval.epochs must be an integer >= 1, got 0",
    ]
    assert not (run_dir / "distilled.safetensors").exists()
