"""Rewrite the README's curvature table from ``bench/results/curvature.json``.

``python -m bench.curvature_readme [--readme README.md]``: replaces the block between
``<!-- curvature-table -->`` and ``<!-- /curvature-table -->`` (atomically), so the README
shows what the committed record holds.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench.curvature import DM_ROW, load_record, rows_for, same_set_as_capped, seed_stats
from src.io import atomic_write_text

BEGIN, END = "<!-- curvature-table -->", "<!-- /curvature-table -->"
INTRO = (
    "Test accuracy (%), mean ± sample std over the seeds run (their number in brackets); "
    "= capped: the exact map distilled bitwise the capped row's sets (no feature reaches a cap "
    "of 10 sqrt(k)). The geometry diagnostics of every run: `bench/results/curvature.md`."
)


def accuracy(runs: dict) -> str:
    """``mean ± std (n)`` of a row's runs (no std for one run)."""
    mean, std = seed_stats([r["distilled"]["mean"] for r in runs.values()])
    return (f"{mean:.2f} ± {std:.2f}" if len(runs) > 1 else f"{mean:.2f}") + f" ({len(runs)})"


def ipc_table(rows: dict, planned: dict) -> list[str]:
    """Markdown lines of one IPC: the k-free rows as a sentence, then lift x k."""
    lines = [
        f"{row}: {accuracy(rows[row])}."
        for row, (_, k, _) in planned.items()
        if k is None and rows.get(row)
    ]
    ks = sorted({k for row, (_, k, _) in planned.items() if k is not None and rows.get(row)})
    if not ks:
        return lines
    lines += ["", "| lift | " + " | ".join(f"k {k:g}" for k in ks) + " |"]
    lines.append("|---|" + "---|" * len(ks))
    ran = [name for row, (name, k, _) in planned.items() if k is not None and rows.get(row)]
    for lift in dict.fromkeys(ran):
        cells = {k: row for row, (name, k, _) in planned.items() if name == lift}
        texts = []
        for k in ks:
            row = cells.get(k)
            runs = rows.get(row, {}) if row else {}
            twin = ", = capped" if runs and same_set_as_capped(rows, row) else ""
            texts.append(accuracy(runs)[:-1] + twin + ")" if runs else "—")
        lines.append(f"| {lift} | " + " | ".join(texts) + " |")
    return lines


def block(record: dict) -> str:
    """The README block: one table per IPC, then the plot."""
    lines = [BEGIN, INTRO, ""]
    for ipc, rows in record["ipcs"].items():
        baseline = [
            r["random_real"]["mean"] for r in rows.get(DM_ROW, {}).values() if "random_real" in r
        ]
        note = f" (random real {statistics.fmean(baseline):.2f})" if baseline else ""
        planned = record.get("rows", {}).get(ipc) or rows_for(int(ipc))
        lines += [f"**IPC {ipc}**{note}", "", *ipc_table(rows, planned), ""]
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
