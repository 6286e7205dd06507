"""A study record as tables of settings: per data set and IPC, one row per setting (the run's
label, plus the values of chosen setting keys), its accuracy over seeds, each seed's, and
the geometry diagnostics at the end (``src.report RECORD --table [KEY ...] [--diagnostics]``);
``--pivot KEY`` spreads one setting over the columns instead (the README's lift x k tables).

A cell is the mean ± sample std over seeds of each run's mean accuracy, so the std is the
seed-to-seed spread. Rows whose sets are bitwise those of an earlier row on every seed
(``set_sha256`` in their results) say so: two settings that distil the same images.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path

from src.pipelines.study import load_record
from src.pipelines.sweep_plot import MISSING, mean_std, setting, shown

# End-of-run geometry diagnostics (class means, results["geometry"]["end"]["mean"]), in order.
DIAGNOSTICS = {
    "real_level_mean": "real level",
    "real_centroid_level": "real centroid level",
    "syn_centroid_level": "syn centroid level",
    "centroid_distance": "centroid distance",
    "ess_fraction": "ESS / n",
    "share_level_spearman": "rank corr. share-level",
}


def row_name(results: dict, settings: dict, keys: list[str]) -> str:
    """The run's label, then each given setting it has (``null`` where set to none)."""
    parts = [results["label"]]
    for key in keys:
        value = setting(settings, key)
        if value is not MISSING:
            parts.append(shown(key, value))
    return ", ".join(parts)


def natural(text: str) -> list[tuple[int, float | str]]:
    """Sort key that orders the numbers inside names by value (k 16 before k 1024)."""
    parts = re.split(r"(\d+(?:\.\d+)?)", text)
    return [(0, float(p)) if p[:1].isdigit() else (1, p) for p in parts]


def difference(row: str, other: str) -> str:
    """The parts of row name ``other`` that ``row`` lacks (how a twin row differs)."""
    mine = row.split(", ")
    return ", ".join(part for part in other.split(", ") if part not in mine)


def collect(record_path: Path, keys: list[str]) -> dict:
    """Per (dataset, IPC): ``rows`` name -> seed -> (results, settings), and ``baseline`` seed
    -> the random real subset's mean accuracy."""
    panels: dict = defaultdict(lambda: {"rows": defaultdict(dict), "baseline": {}})
    for entry in load_record(record_path)["runs"].values():
        results, settings = entry["results"], entry["settings"]
        panel = panels[(results["dataset"], int(results["ipc"]))]
        if "distilled" in results:
            name = row_name(results, settings, keys)
            panel["rows"][name][results["seed"]] = (results, settings)
        if "random_real" in results:
            panel["baseline"][results["seed"]] = results["random_real"]["mean"]
    return {key: panels[key] for key in sorted(panels)}


def mean_std_text(values: list[float]) -> str:
    """``mean ± sample std`` (no std for one value)."""
    mean, std = mean_std(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {std:.2f}"


def seed_means(runs: dict) -> list[float]:
    """Each seed's mean accuracy, in seed order."""
    return [runs[s][0]["distilled"]["mean"] for s in sorted(runs)]


def twin_of(rows: dict, name: str) -> str | None:
    """The first row before ``name`` whose set is bitwise this row's on every seed."""
    digests = {s: r.get("set_sha256") for s, (r, _) in rows[name].items()}
    if None in digests.values():
        return None
    for other in sorted(rows, key=natural):
        if other == name:
            return None
        theirs = {s: r.get("set_sha256") for s, (r, _) in rows[other].items()}
        if theirs == digests:
            return other
    return None


def diagnostics(runs: dict) -> list[str]:
    """The end-of-run diagnostics of a row, averaged over seeds ('—' where undefined)."""
    cells = []
    for name in DIAGNOSTICS:
        values = [r.get("geometry", {}).get("end", {}).get("mean", {}).get(name)
                  for r, _ in runs.values()]  # fmt: skip
        values = [v for v in values if v is not None]
        cells.append(f"{statistics.fmean(values):.3g}" if values else "—")
    return cells


def baseline_line(panel: dict) -> list[str]:
    """The random real subset's accuracy over seeds, as a sentence (none if not evaluated)."""
    values = [panel["baseline"][s] for s in sorted(panel["baseline"])]
    return [f"Random real subset (the init set): {mean_std_text(values)}.", ""] if values else []


def to_markdown(record_path: Path, keys: list[str], with_diagnostics: bool = False) -> str:
    """One table per (dataset, IPC): a row per setting in natural order."""
    parts = []
    for (dataset, ipc), panel in collect(record_path, keys).items():
        rows = panel["rows"]
        head = ["setting", "accuracy (%), mean ± std over seeds", "per seed", "seeds"]
        head += list(DIAGNOSTICS.values()) if with_diagnostics else []
        lines = [f"#### {dataset} IPC {ipc}", "", *baseline_line(panel)]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in sorted(rows, key=natural):
            means, twin = seed_means(rows[name]), twin_of(rows, name)
            shown_name = f"{name} (= {twin}: bitwise the same sets)" if twin else name
            cells = [shown_name, mean_std_text(means), " / ".join(f"{m:.2f}" for m in means)]
            cells += [str(len(means)), *(diagnostics(rows[name]) if with_diagnostics else [])]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def pivot_markdown(record_path: Path, keys: list[str], column: str) -> str:
    """One table per (dataset, IPC): rows by label and ``keys``, a column per value of
    ``column``, cells ``mean ± std (seeds)``; the runs without ``column`` as sentences."""
    parts = []
    for (dataset, ipc), panel in collect(record_path, keys).items():
        grid: dict = defaultdict(dict)
        plain, row_of = [], {}
        for name, runs in sorted(panel["rows"].items(), key=lambda item: natural(item[0])):
            results, settings = next(iter(runs.values()))
            value = setting(settings, column)
            if value is MISSING or value is None:
                plain.append(f"{name}: {mean_std_text(seed_means(runs))} ({len(runs)}).")
                continue
            # The label without its variant: the variant is what the row and column say.
            row_of[name] = row_name({"label": results["label"].split(" (")[0]}, settings, keys)
            twin = twin_of(panel["rows"], name)
            twin_row = row_of.get(twin)
            grid[row_of[name]][float(value)] = (
                runs,
                twin_row and difference(row_of[name], twin_row),
            )
        lines = [f"**{dataset} IPC {ipc}**", "", *baseline_line(panel)]
        lines += plain
        columns = sorted({v for cells in grid.values() for v in cells})
        if columns:
            short = column.rsplit(".", 1)[-1]
            lines += ["", "| setting | " + " | ".join(f"{short} {v:g}" for v in columns) + " |"]
            lines.append("|---|" + "---|" * len(columns))
            for row in sorted(grid, key=natural):
                cells = [pivot_cell(*grid[row][v]) if v in grid[row] else "—" for v in columns]
                lines.append(f"| {row} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def pivot_cell(runs: dict, twin: str | None) -> str:
    """``mean ± std (seeds)`` of one pivot cell, ``= twin`` when its sets are an earlier row's."""
    return f"{mean_std_text(seed_means(runs))} ({len(runs)}{', = ' + twin if twin else ''})"
