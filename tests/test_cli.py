"""The entry points as a user runs them: bad input fails cleanly, a tiny run succeeds.

Every test starts ``python -m src.distill`` / ``python -m src.evaluate`` as a subprocess, so
Hydra's composition, ``report_errors`` and the exit status are exercised for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from src.io import load_distilled, metadata_path, save_distilled
from tests.helpers import (
    EVAL_TINY,
    Sentinel,
    assert_hydra_names_option,
    assert_one_error_line,
    describe,
    run_module,
)

TINY = EVAL_TINY
DISTILL_TINY = [*EVAL_TINY, "iterations=2", "method.batch_real=4"]

# --- src.distill: bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "bad"),
    [
        (["dataset=foo"], "foo"),
        (["dataset=fashion_mnist", "model=foo"], "foo"),
        (["dataset=fashion_mnist", "loss=foo"], "foo"),
    ],
    ids=["dataset", "model", "loss"],
)
def test_distill_unknown_group_option(tmp_path: Path, overrides: list[str], bad: str) -> None:
    sentinel = Sentinel(tmp_path / "run")
    result = run_module("src.distill", *overrides, *DISTILL_TINY, run_dir=sentinel.folder)
    assert_hydra_names_option(result, bad)
    sentinel.assert_untouched()


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["dataset=fashion_mnist", "ipc=0"], ["ipc", "0"]),
        (["dataset=fashion_mnist", "model.name=foo"], ["foo", "convnet"]),
        (["dataset=fashion_mnist", "ipc=7000"], ["ipc=7000", "6000"]),
    ],
    ids=["ipc-0", "model-name", "ipc-above-smallest-class"],
)
def test_distill_bad_value_is_one_error_line(
    tmp_path: Path, overrides: list[str], fragments: list[str]
) -> None:
    sentinel = Sentinel(tmp_path / "run")
    overrides = [*overrides, f"paths.data_dir={tmp_path / 'data'}"]
    result = run_module("src.distill", *DISTILL_TINY, *overrides, run_dir=sentinel.folder)
    assert_one_error_line(result, *fragments)
    sentinel.assert_untouched()


def test_distill_missing_dataset_without_network(tmp_path: Path) -> None:
    sentinel = Sentinel(tmp_path / "run")
    data_dir = tmp_path / "no_data"
    result = run_module(
        "src.distill",
        "dataset=cifar10",
        f"paths.data_dir={data_dir}",
        *DISTILL_TINY,
        run_dir=sentinel.folder,
    )
    assert_one_error_line(result, "cifar10", str(data_dir))
    sentinel.assert_untouched()


# --- src.evaluate: bad input ------------------------------------------------------------------


def test_evaluate_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    result = run_module("src.evaluate", f"distilled={missing}", *TINY, run_dir=tmp_path / "run")
    assert_one_error_line(result, str(missing), "does not exist")
    assert not (tmp_path / "run" / "eval_results.json").exists()


def test_analyze_missing_file_and_bad_classes(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    result = run_module("src.analyze", f"distilled={missing}", run_dir=tmp_path / "run")
    assert_one_error_line(result, str(missing), "does not exist")
    path = save_distilled(
        tmp_path / "set.safetensors", torch.rand(10, 1, 28, 28), torch.arange(10),
        {"dataset": "fashion_mnist", "ipc": 1},
    )  # fmt: skip
    result = run_module("src.analyze", f"distilled={path}", "classes=[12]", run_dir=tmp_path / "r2")
    assert_one_error_line(result, "classes", "[0, 10)")
    assert not list((tmp_path / "r2").glob("*.png"))


def test_evaluate_corrupt_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    before = corrupt.read_bytes()
    result = run_module("src.evaluate", f"distilled={corrupt}", *TINY, run_dir=tmp_path / "run")
    assert_one_error_line(result, str(corrupt))
    assert corrupt.read_bytes() == before
    assert not (tmp_path / "run" / "eval_results.json").exists()


def test_evaluate_shape_mismatch_from_metadata(tmp_path: Path) -> None:
    path = save_distilled(
        tmp_path / "wrong.safetensors",
        torch.rand(10, 3, 32, 32),
        torch.arange(10),
        {"dataset": "fashion_mnist", "ipc": 1},
    )
    result = run_module("src.evaluate", f"distilled={path}", *TINY, run_dir=tmp_path / "run")
    assert_one_error_line(result, str(path), "(3, 32, 32)", "(1, 28, 28)")
    assert not (tmp_path / "run" / "eval_results.json").exists()


def test_evaluate_shape_mismatch_with_explicit_dataset_names_it(tmp_path: Path) -> None:
    path = save_distilled(
        tmp_path / "set_c10.safetensors",
        torch.rand(10, 3, 32, 32),
        torch.arange(10),
        {"dataset": "cifar10", "ipc": 1},
    )
    result = run_module(
        "src.evaluate",
        f"distilled={path}",
        "dataset=fashion_mnist",
        *TINY,
        run_dir=tmp_path / "run",
    )
    line = assert_one_error_line(result, "(3, 32, 32)", "(1, 28, 28)")
    assert "'fashion_mnist'" in line
    assert not (tmp_path / "run" / "eval_results.json").exists()


def test_evaluate_metadata_names_unknown_dataset(tmp_path: Path) -> None:
    path = save_distilled(
        tmp_path / "odd.safetensors",
        torch.rand(10, 1, 28, 28),
        torch.arange(10),
        {"dataset": "foo_set", "ipc": 1},
    )
    result = run_module("src.evaluate", f"distilled={path}", *TINY, run_dir=tmp_path / "run")
    assert_one_error_line(result, "foo_set")


# --- happy path -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distill_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One tiny real distillation of Fashion-MNIST; returns (its folder, a scratch folder)."""
    base = tmp_path_factory.mktemp("cli_happy")
    run_dir = base / "distill"
    result = run_module(
        "src.distill",
        "dataset=fashion_mnist",
        "ipc=1",
        *DISTILL_TINY,
        "eval.random_baseline=false",  # one evaluation is enough here
        f"paths.data_dir={base / 'data'}",
        run_dir=run_dir,
    )
    assert result.returncode == 0, describe(result)
    return run_dir, base


def test_distill_writes_set_picture_and_results(distill_run: tuple[Path, Path]) -> None:
    run_dir, _ = distill_run
    for name in ("distilled.safetensors", "distilled.json", "distilled.png", "results.json"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]

    ds = load_distilled(run_dir / "distilled.safetensors")
    assert tuple(ds.images.shape) == (10, 1, 28, 28)
    assert sorted(ds.labels.tolist()) == list(range(10))
    assert ds.meta["dataset"] == "fashion_mnist"
    assert ds.meta["ipc"] == 1
    assert json.loads(metadata_path(run_dir / "distilled.safetensors").read_text()) == ds.meta

    with Image.open(run_dir / "distilled.png") as im:
        assert im.format == "PNG"
        assert im.size == (1 * (28 + 2) + 2, 10 * (28 + 2) + 2)

    results = json.loads((run_dir / "results.json").read_text())
    assert results["dataset"] == "fashion_mnist" and results["ipc"] == 1
    accuracies = results["distilled"]["accuracies"]
    assert len(accuracies) == 1
    assert 0.0 <= accuracies[0] <= 100.0


def test_evaluate_a_distilled_set(distill_run: tuple[Path, Path]) -> None:
    run_dir, base = distill_run
    eval_dir = base / "evaluate"
    path = run_dir / "distilled.safetensors"
    before = path.read_bytes()
    result = run_module(
        "src.evaluate",
        f"distilled={path}",
        *TINY,
        f"paths.data_dir={base / 'data'}",
        run_dir=eval_dir,
    )
    assert result.returncode == 0, describe(result)
    summary = [line for line in result.stdout.splitlines() if "±" in line]
    assert len(summary) == 1, describe(result)
    assert "fashion_mnist" in summary[0]
    saved = json.loads((eval_dir / "eval_results.json").read_text())
    assert len(saved["accuracies"]) == 1
    assert f"{saved['accuracies'][0]:.2f} ±" in summary[0]
    assert path.read_bytes() == before
