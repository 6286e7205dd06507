"""Entry point: ``python -m src.report DIR|RECORD [...] [--out DIR] [--name NAME]`` (paper-style
results table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.cli import report_errors
from src.pipelines.report import run_report
from src.pipelines.sweep_plot import plot_against


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown table of every run under the given directories."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "dirs", nargs="+", type=Path, help="run or multirun directories, or study records (.json)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write <name>.md/.csv/.png here")
    parser.add_argument("--name", default="report", help="file name of the outputs (no suffix)")
    parser.add_argument(
        "--by-method",
        action="store_true",
        help="study records: one row per method, one column per loss",
    )
    parser.add_argument(
        "--runs",
        action="store_true",
        help="study records: one row per run (accuracy, published figure, wall time, precision)",
    )
    parser.add_argument(
        "--against",
        metavar="KEY",
        help="a study record: plot accuracy against this setting (e.g. loss.k) instead",
    )
    parser.add_argument(
        "--series", nargs="*", default=[], metavar="KEY", help="with --against: one line per value"
    )
    args = parser.parse_args(argv)
    if args.against:
        plot = (args.dirs, args.out, args.name, args.against, args.series)
        print(report_errors(plot_against, *plot))
        return
    print(report_errors(run_report, args.dirs, args.out, args.name, args.by_method, args.runs))


if __name__ == "__main__":
    main()
