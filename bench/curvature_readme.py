"""Rewrite the README's curvature table from ``bench/results/curvature.json``.

``python -m bench.curvature_readme [--readme README.md]``: replaces the block between
``<!-- curvature-table -->`` and ``<!-- /curvature-table -->`` (atomically), so the README
shows what the committed record holds.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

from bench.curvature import DM_ROW, diagnostics_of, load_record, same_set_as_capped, seed_stats
from src.io import atomic_write_text

BEGIN, END = "<!-- curvature-table -->", "<!-- /curvature-table -->"
INTRO = (
    "Cells: mean ± sample std over the seeds run; diagnostics: class means at the end of each "
    "run (every diagnostic in `bench/results/curvature.md`). Exact rows marked = capped "
    "distilled bitwise the capped rows' sets: no feature reaches a cap of 10 sqrt(k)."
)


def _mean_of(diags: list[dict], key: str, fmt: str) -> str:
    values = [d[key] for d in diags if d.get(key) is not None and math.isfinite(d[key])]
    return format(statistics.fmean(values), fmt) if values else "—"


def ipc_table(rows: dict, order: list[str]) -> list[str]:
    """Markdown lines of one IPC: setting, accuracy, seeds, ESS / n, share-level correlation."""
    lines = [
        "| setting | accuracy (%) | seeds | ESS / n | rank corr. share-level |",
        "|---|---|---|---|---|",
    ]
    for row in order:
        runs = rows.get(row, {})
        if not runs:
            continue
        mean, std = seed_stats([r["distilled"]["mean"] for r in runs.values()])
        acc = f"{mean:.2f} ± {std:.2f}" if len(runs) > 1 else f"{mean:.2f}"
        diags = [d for d in map(diagnostics_of, runs.values()) if d]
        label = f"{row} (= capped)" if same_set_as_capped(rows, row) else row
        lines.append(
            f"| {label} | {acc} | {len(runs)} | {_mean_of(diags, 'ess_fraction', '.3f')} | "
            f"{_mean_of(diags, 'share_level_spearman', '+.2f')} |"
        )
    return lines


def block(record: dict) -> str:
    """The README block: one table per IPC, then the plot."""
    lines = [BEGIN, INTRO, ""]
    for ipc, rows in record["ipcs"].items():
        baseline = [
            r["random_real"]["mean"] for r in rows.get(DM_ROW, {}).values() if "random_real" in r
        ]
        note = f" (random real {statistics.fmean(baseline):.2f})" if baseline else ""
        planned = record.get("rows", {}).get(ipc, {})
        order = [*planned, *(r for r in rows if r not in planned)]
        lines += [f"**IPC {ipc}**{note}", "", *ipc_table(rows, order), ""]
    lines += ["![accuracy against k per lift](bench/results/curvature.png)", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Replace the README's curvature block with the committed record's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    default = Path(__file__).parent / "results" / "curvature.json"
    parser.add_argument("--record", type=Path, default=default)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    atomic_write_text(args.readme, text[:start] + block(load_record(args.record)) + text[end:])


if __name__ == "__main__":
    main()
