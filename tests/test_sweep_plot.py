"""src.report RECORD --against KEY: accuracy against a swept setting, bands for the rest."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import pytest

from src.errors import ConfigError
from src.pipelines.study import RECORD_FORMAT
from src.pipelines.sweep_plot import collect, plot_against
from src.report import main as report_main


def _entry(label, loss, accuracy, ipc=1):
    results = {"dataset": "fashion_mnist", "ipc": ipc, "label": label,
               "distilled": {"mean": accuracy}}  # fmt: skip
    return {"overrides": [], "results": results, "settings": {"loss": loss}}


def _record(tmp_path):
    runs = {
        "dm/0": _entry("DM", {"_target_": "Euclidean"}, 70.0),
        "dm/1": _entry("DM", {"_target_": "Euclidean"}, 72.0),
        "p1/0": _entry("DM+HDD", {"k": 1.0, "lift": "project"}, 71.0),
        "p1/1": _entry("DM+HDD", {"k": 1.0, "lift": "project"}, 73.0),
        "p16/0": _entry("DM+HDD", {"k": 16.0, "lift": "project"}, 74.0),
        "e16/0": _entry("DM+HDD", {"k": 16.0, "lift": "expmap"}, 69.0),
        "dm10/0": _entry("DM", {"_target_": "Euclidean"}, 80.0, ipc=10),
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"format": RECORD_FORMAT, "runs": runs}))
    return path


def test_runs_with_the_key_become_lines_and_the_others_bands(tmp_path):
    panels = collect(_record(tmp_path), "loss.k", ["loss.lift"])
    ipc1 = panels[("fashion_mnist", 1)]
    assert dict(ipc1["bands"]) == {"DM": [70.0, 72.0]}
    assert {name: dict(points) for name, points in ipc1["lines"].items()} == {
        "lift project": {1.0: [71.0, 73.0], 16.0: [74.0]},
        "lift expmap": {16.0: [69.0]},
    }
    assert dict(panels[("fashion_mnist", 10)]["bands"]) == {"DM": [80.0]}


def test_the_command_writes_one_panel_per_ipc(tmp_path, capsys):
    report_main([str(_record(tmp_path)), "--against", "loss.k", "--series", "loss.lift",
                 "--out", str(tmp_path), "--name", "study"])  # fmt: skip
    image = mpimg.imread(tmp_path / "study_loss_k.png")
    assert image.shape[1] > 1.5 * image.shape[0]  # two panels side by side
    assert "study_loss_k.png" in capsys.readouterr().out


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="one study record"):
        plot_against([tmp_path], tmp_path, "x", "loss.k", [])
