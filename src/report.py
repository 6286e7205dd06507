"""Entry point: ``python -m src.report DIR [DIR ...] [--out DIR]`` (paper-style results table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.cli import report_errors
from src.pipelines.report import run_report


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown table of every run under the given directories."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run or multirun directories")
    parser.add_argument("--out", type=Path, default=None, help="write report.md/.csv/.png here")
    args = parser.parse_args(argv)
    print(report_errors(run_report, args.dirs, args.out))


if __name__ == "__main__":
    main()
