"""The notebooks run top to bottom on a (tiny) Fashion-MNIST demo output."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from src.pipelines.compare import run_compare
from tests.helpers import ROOT, TINY

NOTEBOOKS = ROOT / "notebooks"
TINY_DEMO = [*TINY, "eval.num_models=2", "logger=csv", "geometry.real_per_class=20"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """What `make demo` writes, at toy scale: DM and DM+HDD runs with results and CSV logs."""
    out = tmp_path_factory.mktemp("demo")
    run_compare(TINY_DEMO, ["euclidean", "lorentz"], [0], out)
    return out


@pytest.mark.parametrize(
    ("name", "pictures"),
    [
        ("explore_distilled_set.ipynb", 3),
        ("compare_runs.ipynb", 2),
    ],  # grid, disk, levels; bars, loss
)
def test_notebook_runs_top_to_bottom(name, pictures, demo_dir, monkeypatch):
    monkeypatch.setenv("HDD_DEMO_DIR", str(demo_dir))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # a failing cell raises CellExecutionError
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert str(demo_dir) in "".join(o.get("text", "") for o in outputs)  # it read the demo
    assert sum("image/png" in o.get("data", {}) for o in outputs) == pictures
