"""Entry point: ``python -m src.report DIR|RECORD [...] [--out DIR] [--name NAME]`` (paper-style
results table), or ``python -m src.report --study NAME ...`` (the reports a study config names)."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.cli import report_errors
from src.pipelines.report import run_report, settings_report
from src.pipelines.study import study_reports
from src.pipelines.sweep_plot import plot_against


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown table of every run under the given directories."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "dirs", nargs="*", type=Path, help="run or multirun directories, or study records (.json)"
    )
    parser.add_argument(
        "--study",
        nargs="+",
        metavar="NAME",
        help="write every report of these studies (conf/experiment/study/NAME.yaml, study.reports)",
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
    parser.add_argument(
        "--table",
        nargs="*",
        metavar="KEY",
        help="a study record: a row per setting (label and these keys), accuracy over seeds",
    )
    parser.add_argument("--pivot", metavar="KEY", help="with --table: a column per value of KEY")
    parser.add_argument(
        "--diagnostics", action="store_true", help="with --table: the geometry at each run's end"
    )
    parser.add_argument(
        "--readme",
        type=Path,
        help="with --table: also replace the block <!-- NAME --> ... <!-- /NAME --> of this file",
    )
    args = parser.parse_args(argv)
    if args.study:
        for report in report_errors(study_reports, args.study):
            main(report)
        return
    if not args.dirs:
        parser.error("name run directories or study records, or --study")
    if args.table is not None:
        table = (args.dirs, args.out, args.name, args.table, args.pivot, args.diagnostics)
        print(report_errors(settings_report, *table, args.readme))
        return
    if args.against:
        plot = (args.dirs, args.out, args.name, args.against, args.series)
        print(report_errors(plot_against, *plot))
        return
    print(report_errors(run_report, args.dirs, args.out, args.name, args.by_method, args.runs))


if __name__ == "__main__":
    main()
