"""Entry point: ``python -m src.report DIR|RECORD [...] [--out DIR] [--name NAME]`` (paper-style
results table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.cli import report_errors
from src.pipelines.report import run_report


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
    args = parser.parse_args(argv)
    print(report_errors(run_report, args.dirs, args.out, args.name, args.by_method, args.runs))


if __name__ == "__main__":
    main()
