"""Accuracy per architecture of runs evaluated across a pool: bars per architecture, one per
set, with the sets' augmentation and without it side by side (``src.report`` writes it as
``<name>_architectures.png`` whenever a run has ``results.json["architectures"]``)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from src.io.atomic import atomic_path  # noqa: E402
from src.viz.bars import grouped_bars  # noqa: E402

PANELS = {"": "with the sets' augmentation", "_no_aug": "without augmentation (eval.robust)"}


def collect(runs: list[dict]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Panel suffix -> set ('random real' or the run's label) -> architecture -> accuracies
    (each seed's random real subset counted once per architecture)."""
    cells: dict = {s: defaultdict(lambda: defaultdict(list)) for s in PANELS}
    seen: set = set()
    for results in runs:
        for arch, node in results.get("architectures", {}).items():
            for suffix in PANELS:
                if f"distilled{suffix}" in node:
                    accs = node[f"distilled{suffix}"]["accuracies"]
                    cells[suffix][results["label"]][arch] += accs
                key = (arch, suffix, results.get("seed"))
                if f"random_real{suffix}" in node and key not in seen:
                    seen.add(key)
                    cells[suffix]["random real"][arch] += node[f"random_real{suffix}"]["accuracies"]
    return {s: {name: dict(a) for name, a in sets.items()} for s, sets in cells.items() if sets}


def save_plot(runs: list[dict], path: Path, title: str = "") -> Path | None:
    """Draw the panels into ``path`` (PNG, written atomically); None when no run has any."""
    panels = collect(runs)
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.8), squeeze=False)
    for ax, (suffix, sets) in zip(axes[0], panels.items(), strict=True):
        archs = list(dict.fromkeys(a for per_arch in sets.values() for a in per_arch))
        names = sorted(sets, key=lambda n: (n != "random real", n))

        def cell(i: int, name: str, archs=archs, sets=sets) -> tuple[float, float] | None:
            values = sets[name].get(archs[i])
            if not values:
                return None
            return statistics.fmean(values), statistics.pstdev(values)

        grouped_bars(ax, archs, names, cell)
        ax.set_title(PANELS[suffix], fontsize=9)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
