"""A study record's accuracy against one swept setting: one line per series, each run without
that setting (a method's own loss, a control) as a band (``src.report RECORD --against KEY``).

The curvature study's picture is one such plot: ``--against loss.k --series loss.lift
loss.max_radius`` draws accuracy against k, a line per lift, and DM as a grey band. Every
point is the mean ± sample std over seeds of the runs' mean accuracies; one panel per data
set and IPC.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from src.errors import ConfigError  # noqa: E402
from src.io.atomic import atomic_path  # noqa: E402
from src.pipelines.study import load_record  # noqa: E402

MISSING = object()


def setting(settings: dict, key: str) -> Any:
    """The value at a dotted ``key`` of a run's settings, or MISSING."""
    node: Any = settings
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def shown(key: str, value: object) -> str:
    """``key value`` for a row name; a class path (``prune._target_``) by its class name."""
    if key.endswith("._target_"):
        return str(value).rsplit(".", 1)[-1]
    value = "null" if value is None else value
    short = key.rsplit(".", 1)[-1]
    return f"{short} {value:g}" if isinstance(value, float) else f"{short} {value}"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def collect(record_path: Path, against: str, series: list[str]) -> dict:
    """Per (dataset, IPC) panel: ``lines`` series name -> x -> accuracies, and ``bands``
    run label -> accuracies of the runs without ``against``."""
    panels: dict = defaultdict(lambda: {"lines": defaultdict(lambda: defaultdict(list)),
                                        "bands": defaultdict(list)})  # fmt: skip
    for entry in load_record(record_path)["runs"].values():
        results, settings = entry["results"], entry["settings"]
        if "distilled" not in results:
            continue
        panel = panels[(results["dataset"], int(results["ipc"]))]
        accuracy = results["distilled"]["mean"]
        x = setting(settings, against)
        if x is MISSING or x is None:
            panel["bands"][results["label"]].append(accuracy)
            continue
        name = ", ".join(shown(key, setting(settings, key)) for key in series)
        panel["lines"][name or against][float(x)].append(accuracy)
    if not panels:
        raise ConfigError(f"study record '{record_path}' holds no finished run")
    return panels


def draw_panel(ax, panel: dict, against: str) -> None:
    """One panel: the bands (the first grey with its std, the others dashed), then the lines."""
    for i, (label, values) in enumerate(sorted(panel["bands"].items())):
        mean, std = mean_std(values)
        if i == 0:
            ax.axhspan(mean - std, mean + std, color="gray", alpha=0.25, lw=0)
            ax.axhline(mean, color="gray", lw=1, label=f"{label} {mean:.1f}")
        else:
            style = ("--", ":", "-.")[(i - 1) % 3]
            ax.axhline(mean, color="black", ls=style, lw=1, label=f"{label} {mean:.1f}")
    xs_all: list[float] = []
    for j, (name, points) in enumerate(sorted(panel["lines"].items())):
        xs = sorted(points)
        stats = [mean_std(points[x]) for x in xs]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], fmt="-o",
                    color=f"C{j}", capsize=3, label=name)  # fmt: skip
        xs_all += xs
    if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 16:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(against)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7)


def save_plot(record_path: Path, against: str, series: list[str], path: Path) -> Path:
    """Draw every panel of the record into ``path`` (PNG, written atomically)."""
    panels = collect(record_path, against, series)
    keys = sorted(panels)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.8), squeeze=False)
    for ax, (dataset, ipc) in zip(axes[0], keys, strict=True):
        draw_panel(ax, panels[(dataset, ipc)], against)
        ax.set_title(f"{dataset} IPC {ipc}", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_against(
    records: list[Path], out: Path | None, name: str, against: str, series: list[str]
) -> str:
    """One study record's plot against ``against``, as ``<out>/<name>_<against>.png``."""
    if len(records) != 1 or not records[0].is_file():
        raise ConfigError("--against draws one study record (a .json file)")
    path = (out or Path(".")) / f"{name}_{against.replace('.', '_')}.png"
    return f"wrote {save_plot(records[0], against, series, path)}"
