"""The results table built from a fabricated multirun directory."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image as mpimg
import pytest

from src.errors import ConfigError
from src.pipelines.report import run_report
from tests.helpers import ROOT


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


def test_a_failing_sweep_job_leaves_the_others_and_the_report_marks_it(tmp_path):
    from tests.helpers import TINY, problem_lines, run_module

    sweep = tmp_path / "sweep"
    res = run_module(
        "src.distill", "-m", *TINY, "eval.random_baseline=false", "geometry.enabled=false",
        "loss.scale=20,inf,30", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}",
        run_dir=tmp_path / "unused",
    )  # fmt: skip
    assert res.returncode == 1, res.stderr[-3000:]
    errors = [line for line in problem_lines(res.stderr) if line.startswith("error: sweep job")]
    assert len(errors) == 1 and f"sweep job {sweep / '1'} failed" in errors[0]
    assert "the matching loss became inf" in errors[0]
    assert sorted(p.parent.name for p in sweep.rglob("results.json")) == ["0", "2"]
    failed = json.loads((sweep / "1" / "failed.json").read_text())
    # The failed job's label is the one its run would have written: its own column.
    inf = "DM+HDD (expmap cap 10, k 1, scale inf)"
    assert failed["label"] == inf and "loss.scale=inf" in failed["overrides"]
    lines = run_report([sweep]).splitlines()
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = dict(zip(columns, (c.strip() for c in lines[2].strip("|").split("|")), strict=True))
    assert cells["IPC"] == "2" and cells[inf] == "1 failed"
    assert cells["DM+HDD"].endswith("(1)")  # scale 20, the released setting


def test_the_report_counts_failed_and_missing_jobs_in_their_cells(tmp_path):
    sweep = tmp_path / "multirun"
    _run(sweep, "0", "DM", 1, 0, [70.0, 72.0])
    bad = sweep / "1"
    bad.mkdir()
    record = {"dataset": "fashion_mnist", "ipc": 1, "label": "DM+HDD", "error": "ipc=0 ..."}
    (bad / "failed.json").write_text(json.dumps(record))
    (bad / ".hydra").mkdir()
    (bad / ".hydra" / "config.yaml").write_text("{}")
    gone = sweep / "2" / ".hydra"  # killed before it wrote anything of its own
    gone.mkdir(parents=True)
    gone.joinpath("config.yaml").write_text(
        "dataset: {name: fashion_mnist}\nipc: 10\n"
        "method: {_target_: src.methods.dm.DistillModule, name: dm}\n"
        "loss: {_target_: src.matching.EuclideanMeanLoss}\n"
    )
    lines = run_report([sweep]).splitlines()
    assert lines[0] == "| dataset | IPC | DM | DM+HDD |"
    assert lines[2] == "| fashion_mnist | 1 | 71.00 ± 1.00 (2) | 1 failed |"
    assert lines[3] == "| fashion_mnist | 10 | 1 missing | — |"


def test_runs_evaluated_across_a_pool_get_a_table_per_architecture(tmp_path):
    sweep = tmp_path / "multirun"
    _run(sweep, "0", "DM", 10, 0, [80.0, 82.0], baseline=[70.0, 72.0])
    _run(sweep, "1", "DM+HDD", 10, 0, [81.0, 83.0], baseline=[70.0, 72.0])
    for name, alexnet in (("0", [60.0, 62.0]), ("1", [64.0, 66.0])):
        path = sweep / name / "results.json"
        r = json.loads(path.read_text())
        r["architectures"] = {
            "convnet": {"distilled": r["distilled"], "random_real": r["random_real"]},
            "alexnet": {"distilled": {"accuracies": alexnet},
                        "random_real": {"accuracies": [40.0, 42.0]}},
        }  # fmt: skip
        path.write_text(json.dumps(r))
    _run(sweep, "2", "DM", 10, 1, [79.0, 79.0])  # evaluated on its own network only
    table = run_report([sweep])
    own, convnet, alexnet = table.split("Evaluated on ")
    assert "| fashion_mnist | 10 | 71.00 ± 1.00 (2) | 80.00 ± 1.22 (4) | 82.00 ± 1.00 (2) |" in own
    assert convnet.startswith("convnet") and alexnet.startswith("alexnet")
    assert (
        "| fashion_mnist | 10 | 71.00 ± 1.00 (2) | 81.00 ± 1.00 (2) | 82.00 ± 1.00 (2) |" in convnet
    )
    assert (
        "| fashion_mnist | 10 | 41.00 ± 1.00 (2) | 61.00 ± 1.00 (2) | 65.00 ± 1.00 (2) |" in alexnet
    )


def _record_entry(label: str, ipc: int, seconds: float, precision: str) -> dict:
    accuracies = [0.8, 0.82]
    node = {"accuracies": accuracies, "mean": 81.0, "std": 1.41}
    published = {"ipc1": {"DM": 70.7}, "ipc10": {"DM": 83.5}}
    return {
        "overrides": [],
        "results": {"dataset": "fashion_mnist", "ipc": ipc, "label": label, "seed": 0,
                    "distill_seconds": seconds, "threads": 2, "distilled": node},
        "settings": {"study": {"published": published}, "iterations": 20000,
                     "eval": {"num_models": 2, "epochs": 1000},
                     "trainer": {"precision": precision}},
    }  # fmt: skip


def test_the_runs_table_holds_each_run_against_its_published_figure(tmp_path):
    from src.pipelines.study import RECORD_FORMAT

    record = tmp_path / "full.json"
    runs = {
        "ipc10/dm/lorentz": _record_entry("DM+HDD", 10, 9000.0, "32-true"),
        "ipc10/dm/euclidean": _record_entry("DM", 10, 7200.0, "bf16-mixed"),
        "ipc1/dm/euclidean": _record_entry("DM", 1, 3600.0, "32-true"),
    }
    record.write_text(json.dumps({"format": RECORD_FORMAT, "runs": runs}))
    table = run_report([record], tmp_path, "full", runs=True)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    assert [r[:2] for r in rows] == [["1", "DM"], ["10", "DM"], ["10", "DM+HDD"]]
    ipc, label, seed, acc, published, baseline, hours, evaluation, its, precision, _ = rows[1]
    assert (acc, published, baseline, hours) == ("81.00 ± 1.41 (2)", "83.5", "—", "2.00")
    assert (evaluation, its, precision) == ("2 x 1000 epochs", "20000", "bf16-mixed")
    assert rows[0][4] == "70.7" and rows[2][4] == "—"  # no published DM+HDD figure
    assert rows[2][6] == "2.50"
    assert (tmp_path / "full.md").read_text().strip() == table
    with pytest.raises(ConfigError, match="--runs reads study records"):
        run_report([tmp_path], None, "x", runs=True)


def test_runs_evaluated_across_a_pool_get_bars_per_architecture(tmp_path):
    from src.pipelines.arch_plot import collect

    def arch(distilled, baseline, no_aug=None):
        node = {"distilled": {"accuracies": distilled}, "random_real": {"accuracies": baseline}}
        if no_aug:
            node |= {"distilled_no_aug": {"accuracies": no_aug[0]},
                     "random_real_no_aug": {"accuracies": no_aug[1]}}  # fmt: skip
        return node

    runs = [
        {"label": "DM", "seed": 0, "architectures": {
            "convnet": arch([80.0], [70.0], ([75.0], [60.0])), "alexnet": arch([60.0], [40.0])}},
        {"label": "DM+HDD", "seed": 0, "architectures": {"convnet": arch([81.0], [70.0])}},
        {"label": "DM", "seed": 1, "architectures": {"convnet": arch([82.0], [72.0])}},
    ]  # fmt: skip
    panels = collect(runs)
    assert panels[""] == {
        "DM": {"convnet": [80.0, 82.0], "alexnet": [60.0]},
        "random real": {"convnet": [70.0, 72.0], "alexnet": [40.0]},  # seed 0's once
        "DM+HDD": {"convnet": [81.0]},
    }
    assert panels["_no_aug"] == {"DM": {"convnet": [75.0]}, "random real": {"convnet": [60.0]}}

    sweep = tmp_path / "multirun"
    for i, results in enumerate(runs):
        (sweep / str(i)).mkdir(parents=True)
        body = results | {"dataset": "fashion_mnist", "ipc": 10, "distilled": {"accuracies": [1.0]}}
        (sweep / str(i) / "results.json").write_text(json.dumps(body))
    run_report([sweep], tmp_path, "pool")
    image = mpimg.imread(tmp_path / "pool_architectures.png")
    assert image.shape[1] > 2 * image.shape[0]  # two panels: with and without augmentation
