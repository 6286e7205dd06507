"""Cross-architecture evaluation, the robust scores and the whole-set reference."""

from __future__ import annotations

import json
import math

import pytest

from src.evaluation import EvalResult
from src.evaluation.scores import (
    augmentation_robust_score,
    improvement_over_random,
    label_robust_score,
    normalised,
    whole_set_gap,
)
from src.evaluation.whole_set import cache_path, whole_set_reference
from src.io import save_distilled
from src.methods.base import initial_synthetic_set
from src.pipelines import evaluate as evaluate_pipeline
from src.pipelines.cross_arch import architecture_specs
from src.pipelines.evaluate import EVAL_FILE, run_evaluate
from src.rng import make_generator
from tests.helpers import EVAL_TINY, ROOT, compose_cfg

TINY_EVAL = [*EVAL_TINY, "eval.num_models=2"]


@pytest.mark.parametrize("config", ["evaluate", "distill"])
def test_the_pool_presets_compose_to_the_fields_pools(config):
    instance = compose_cfg(config, ["eval/pool=instancenorm"]).eval.models
    batch = compose_cfg(config, ["eval/pool=batchnorm"]).eval.models
    assert list(instance) == ["convnet", "alexnet", "vgg11", "resnet18"]
    assert list(batch) == ["convnet_bn", "alexnet_bn", "vgg11_bn", "resnet18_bn"]
    assert list(compose_cfg(config, []).eval.models) == []


def test_the_runs_own_network_keeps_its_settings_in_a_pool():
    cfg = compose_cfg("evaluate", ["model.width=8", "eval/pool=instancenorm"])
    specs = architecture_specs(cfg)
    assert specs["convnet"]["width"] == 8 and specs["alexnet"] == {"name": "alexnet"}
    assert architecture_specs(compose_cfg("evaluate", ["model.width=8"])) == {
        "convnet": specs["convnet"]
    }


def test_the_normalisation_maps_minus_one_zero_one_to_zero_its_root_and_hundred():
    assert normalised(-1.0) == pytest.approx(0.0, abs=1e-12)
    assert normalised(1.0) == pytest.approx(100.0)
    assert normalised(0.0) == pytest.approx(100 * (1 - math.exp(-1)) / (math.e - math.exp(-1)))
    assert normalised(0.0) == pytest.approx(26.894142, abs=1e-6)


def test_scores_equal_their_formulas_on_fabricated_accuracies():
    distilled, random_real = [80.0, 82.0], [70.0, 76.0]
    assert improvement_over_random(distilled, random_real).accuracies == [10.0, 6.0]
    assert whole_set_gap(distilled, 93.5).accuracies == [13.5, 11.5]
    # ARS: beta = 0.5 * 0.10 + 0.5 * 0.30 = 0.20 for network 0; 0.5 * 0.06 + 0.5 * 0.00 = 0.03.
    ars = augmentation_robust_score(distilled, random_real, [60.0, 50.0], [30.0, 50.0])
    assert ars.accuracies == pytest.approx([normalised(0.20), normalised(0.03)])
    # LRS: alpha = 0.5 * 0.10 - 0.5 * 0.135 = -0.0175; 0.5 * 0.06 - 0.5 * 0.115 = -0.0275.
    lrs = label_robust_score(distilled, random_real, 93.5)
    assert lrs.accuracies == pytest.approx([normalised(-0.0175), normalised(-0.0275)])
    with pytest.raises(ValueError, match="as many networks"):
        improvement_over_random([1.0], [1.0, 2.0])


def _random_real_file(tmp_path, fmnist_train, ipc=1, seed=0):
    """The random real subset a run with ``seed`` draws, saved as if it were distilled."""
    info, pool = fmnist_train
    images, labels = initial_synthetic_set(pool, ipc, "real", make_generator(seed, "init"))
    meta = {"dataset": "fashion_mnist", "ipc": ipc, "label": "copy", "factor": 1}
    return save_distilled(tmp_path / "set.safetensors", images, labels, meta)


def test_a_cross_architecture_evaluation_prints_one_row_per_architecture(
    tmp_path, fmnist_train, capsys
):
    path = _random_real_file(tmp_path, fmnist_train)
    out = tmp_path / "eval"
    pool = "eval.models=[convnet,{name:convnet_bn,width:8}]"
    cfg = compose_cfg(
        "evaluate",
        [f"distilled={path}", *TINY_EVAL, pool, "eval.robust=true",
         f"paths.data_dir={ROOT / 'data'}", f"paths.output_dir={out}"],
    )  # fmt: skip
    results = run_evaluate(cfg)
    table = capsys.readouterr().out
    assert "| convnet |" in table and "| convnet_bn |" in table
    assert "ARS" in table and "IOR, no aug" in table
    for arch in ("convnet", "convnet_bn"):
        # The file is the random subset itself: trained with the same seeds, every network
        # scores exactly the same on both, with and without augmentation.
        assert results[arch]["distilled"] == results[arch]["random_real"]
        assert results[arch]["distilled_no_aug"] == results[arch]["random_real_no_aug"]
        assert results[arch]["improvement"]["accuracies"] == [0.0, 0.0]
        assert results[arch]["augmentation_robust_score"]["mean"] == pytest.approx(normalised(0))
    # Published whole-set values are for the field's ConvNet (width 128), not this one.
    assert "whole_set" not in results["convnet"] and "whole_set" not in results["convnet_bn"]
    saved = json.loads((out / EVAL_FILE).read_text())
    assert set(saved["architectures"]) == {"convnet", "convnet_bn"}
    assert saved["architectures"]["convnet_bn"]["model"] == {"name": "convnet_bn", "width": 8}


def test_eval_augment_none_trains_without_dsa(tmp_path, fmnist_train, monkeypatch):
    from src.augment import DSA

    def refuse(*args, **kwargs):
        raise AssertionError("DSA was applied")

    monkeypatch.setattr(DSA, "__call__", refuse)
    path = _random_real_file(tmp_path, fmnist_train)
    data, out = f"paths.data_dir={ROOT / 'data'}", f"paths.output_dir={tmp_path / 'e'}"
    overrides = [f"distilled={path}", *TINY_EVAL, "eval.num_models=1", "eval.epochs=1", data, out]
    run_evaluate(compose_cfg("evaluate", [*overrides, "eval.augment=none"]))
    with pytest.raises(AssertionError, match="DSA was applied"):
        run_evaluate(compose_cfg("evaluate", overrides))


def test_a_whole_set_measurement_is_cached_with_its_protocol_and_reused(tmp_path, monkeypatch):
    calls = []

    def fake_evaluator(cfg, info, test_pool, augment, model_cfg=None):
        def evaluate(images, labels, factor=1):
            calls.append((len(images), cfg.eval.epochs, augment is None))
            return EvalResult([41.0, 43.0])

        return evaluate

    monkeypatch.setattr(evaluate_pipeline, "build_evaluator", fake_evaluator)
    overrides = ["whole_set=true", "dataset=random_cifar10", "whole_set_epochs=3",
                 "eval.num_models=2", "model.width=8", "logger=none",
                 f"paths.data_dir={tmp_path}", f"paths.output_dir={tmp_path / 'out'}"]  # fmt: skip
    cfg = compose_cfg("evaluate", overrides)
    first = run_evaluate(cfg)
    assert calls == [(50000, 3, False)]  # the whole training split, whole-set epochs, DSA
    again = run_evaluate(compose_cfg("evaluate", overrides))
    assert len(calls) == 1 and again.accuracies == first.accuracies == [41.0, 43.0]
    run_evaluate(compose_cfg("evaluate", [*overrides, "whole_set_epochs=4"]))
    assert len(calls) == 2  # another protocol is another measurement
    model = {"name": "convnet", "width": 8, "norm": "instancenorm", "act": "relu",
             "pool": "avgpool", "depth": None}  # fmt: skip
    files = sorted((tmp_path / "whole_set").glob("*.json"))
    assert len(files) == 2
    record = json.loads(cache_path(tmp_path, json.loads(files[0].read_text())["protocol"])
                        .read_text())  # fmt: skip
    assert record["protocol"]["dataset"] == "random_cifar10"
    assert record["protocol"]["model"] == model and record["protocol"]["augment"] is not None
    reference = whole_set_reference(tmp_path, "random_cifar10", model)
    assert reference["source"] == "measured" and reference["accuracy"] == pytest.approx(42.0)
    assert whole_set_reference(tmp_path, "random_cifar10", model | {"width": 16}) is None


def test_published_whole_set_values_are_for_the_fields_convnet_only(tmp_path):
    convnet = {"name": "convnet", "width": 128, "norm": "instancenorm", "depth": None}
    assert whole_set_reference(tmp_path, "fashion_mnist", convnet) == {
        "accuracy": 93.5, "source": "published", "protocol": None
    }  # fmt: skip
    assert whole_set_reference(tmp_path, "fashion_mnist", convnet | {"width": 8}) is None
    assert whole_set_reference(tmp_path, "fashion_mnist", {"name": "alexnet"}) is None


def test_bad_evaluation_settings_are_one_error_each(tmp_path):
    from src.errors import ConfigError
    from src.pipelines.validate import validate_eval

    cfg = compose_cfg("evaluate", ["eval.augment=rotate", "distilled=x"])
    with pytest.raises(ConfigError, match="eval.augment must be one of same, none"):
        validate_eval(cfg)
    cfg = compose_cfg("evaluate", ["eval.augment=none", "eval.robust=true", "distilled=x"])
    with pytest.raises(ConfigError, match="needs eval.augment=same"):
        validate_eval(cfg)
    with pytest.raises(ConfigError, match="distilled=PATH is required"):
        run_evaluate(compose_cfg("evaluate", [f"paths.output_dir={tmp_path}"]))


def test_a_distillation_run_evaluates_its_final_set_across_the_pool(tmp_path):
    from src.pipelines.distill import run_distill
    from tests.helpers import TINY

    out = tmp_path / "run"
    pool = "eval.models=[convnet,{name:convnet_bn,width:8}]"
    overrides = [*TINY, "eval.num_models=2", pool, "geometry.enabled=false",
                 f"paths.data_dir={ROOT / 'data'}", f"paths.output_dir={out}"]  # fmt: skip
    results = run_distill(compose_cfg("distill", overrides))
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["architectures"]) == {"convnet", "convnet_bn"}
    convnet = saved["architectures"]["convnet"]
    # The run's own network in the pool reuses the run's evaluation instead of repeating it.
    assert convnet["distilled"] == results["distilled"]
    assert convnet["random_real"] == results["random_real"]
    assert convnet["improvement"]["accuracies"] == pytest.approx(
        [d - r for d, r in zip(results["distilled"]["accuracies"],
                               results["random_real"]["accuracies"], strict=True)]
    )  # fmt: skip
