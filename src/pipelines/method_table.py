"""A study's method x loss table: one row per method (and IPC), one column per matching loss,
each cell the mean ± sample std over seeds of the runs' mean accuracies, and its bar chart.

Rows and columns come from each run's settings through the method and loss classes
(``label_parts``), so a record of any methods and losses pivots without naming them here.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from src.io.atomic import atomic_path  # noqa: E402
from src.pipelines.components import label_parts  # noqa: E402
from src.pipelines.study import load_record  # noqa: E402
from src.viz.bars import grouped_bars  # noqa: E402

OWN_LOSS = "own loss"  # the column of a method's own (Euclidean) loss at its defaults
BASELINE = "random real"


def collect_cells(record_path: Path) -> dict[tuple[str, int], dict[str, dict[str, list[float]]]]:
    """Per (dataset, IPC): method row -> loss column -> the runs' mean accuracies (one per
    seed); the random real subsets under the row ``random real`` (each seed once)."""
    cells: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    baselines: dict = defaultdict(dict)
    for entry in load_record(record_path)["runs"].values():
        results = entry["results"]
        key = (results["dataset"], int(results["ipc"]))
        method, loss = label_parts(OmegaConf.create(entry["settings"]))
        if "distilled" in results:
            cells[key][method][loss or OWN_LOSS].append(results["distilled"]["mean"])
        if "random_real" in results:
            baselines[key][results.get("seed")] = results["random_real"]["mean"]
    for key, seeds in baselines.items():
        cells[key][BASELINE][OWN_LOSS] = list(seeds.values())
    return {k: {m: dict(c) for m, c in rows.items()} for k, rows in cells.items()}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def columns(rows: dict[str, dict[str, list[float]]]) -> list[str]:
    """The loss columns present: the method's own loss first, then in name order."""
    present = {c for cols in rows.values() for c in cols}
    return [OWN_LOSS] * (OWN_LOSS in present) + sorted(present - {OWN_LOSS})


def to_markdown(cells: dict) -> str:
    """One table per (dataset, IPC): rows methods, columns losses, ``mean ± std (seeds)``."""
    parts = []
    for (dataset, ipc), rows in sorted(cells.items()):
        cols = columns(rows)
        lines = [f"{dataset} IPC {ipc}", "", "| method | " + " | ".join(cols) + " |"]
        lines.append("|---|" + "---|" * len(cols))
        order = [BASELINE] * (BASELINE in rows) + sorted(set(rows) - {BASELINE})
        for method in order:
            texts = []
            for c in cols:
                values = rows[method].get(c)
                if values:
                    mean, std = _stats(values)
                    texts.append(f"{mean:.2f} ± {std:.2f} ({len(values)})")
                else:
                    texts.append("—")
            lines.append(f"| {method} | " + " | ".join(texts) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def save_chart(path: Path, cells: dict) -> Path:
    """Bars per method (one per loss, std over seeds), one panel per (dataset, IPC)."""
    keys = sorted(cells)
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        rows = cells[key]
        methods = sorted(set(rows) - {BASELINE})
        cols = columns({m: rows[m] for m in methods})
        grouped_bars(
            ax,
            methods,
            cols,
            lambda i, c, rows=rows, methods=methods: (
                _stats(rows[methods[i]][c]) if rows[methods[i]].get(c) else None
            ),
        )
        if BASELINE in rows:
            ax.axhline(_stats(rows[BASELINE][OWN_LOSS])[0], color="grey", ls="--", label=BASELINE)
        values = [v for m in rows for vs in rows[m].values() for v in vs]
        ax.set_ylim(min(values) - 3, max(values) + 2)  # the differences, not the bars' height
        ax.set_title(f"{key[0]} IPC {key[1]}")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
