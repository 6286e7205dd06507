"""The results table built from a fabricated multirun directory."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image as mpimg
import pytest

from src.errors import ConfigError
from src.pipelines.report import run_report
from tests.conftest import ROOT


def _run(root, name, label, ipc, seed, accs, baseline=None):
    run = root / name
    run.mkdir(parents=True)
    r = {"label": label, "dataset": "fashion_mnist", "ipc": ipc, "seed": seed,
         "distilled": {"accuracies": accs}}  # fmt: skip
    if baseline is not None:
        r["random_real"] = {"accuracies": baseline}
    (run / "results.json").write_text(json.dumps(r))


def test_report_pools_seeds_and_networks_per_cell(tmp_path):
    sweep = tmp_path / "multirun"
    _run(sweep, "0", "DM", 1, 0, [70.0, 72.0], baseline=[50.0, 52.0])
    _run(sweep, "1", "DM+HDD", 1, 0, [74.0, 76.0], baseline=[50.0, 52.0])
    _run(sweep, "2", "DM", 1, 1, [68.0, 70.0], baseline=[54.0, 56.0])
    _run(sweep, "3", "DM+HDD", 1, 1, [76.0, 78.0])
    _run(sweep, "4", "DM", 10, 0, [83.0, 85.0])
    table = run_report([sweep], tmp_path / "out")
    lines = table.splitlines()
    assert lines[0] == "| dataset | IPC | random real | DM | DM+HDD |"
    # Baseline: seeds 0 and 1 once each (4 networks), not once per run.
    assert (
        lines[2] == "| fashion_mnist | 1 | 53.00 ± 2.24 (4) | 70.00 ± 1.41 (4) | 76.00 ± 1.41 (4) |"
    )
    assert lines[3] == "| fashion_mnist | 10 | — | 84.00 ± 1.00 (2) | — |"
    csv_lines = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert csv_lines[0] == "dataset,ipc,method,mean,std,n" and len(csv_lines) == 1 + 4
    assert mpimg.imread(tmp_path / "out" / "report.png").shape[0] > 100


def test_report_rejects_empty_or_foreign_directories(tmp_path):
    with pytest.raises(ConfigError, match="no results.json"):
        run_report([tmp_path])
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a results file"):
        run_report([tmp_path])
    proc = subprocess.run(
        [sys.executable, "-m", "src.report", str(tmp_path / "missing")],
        cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"},
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error:")
