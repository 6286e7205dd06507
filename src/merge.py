"""Entry point: ``python -m src.merge OUT SHARD...``: the distilled sets of class shards (run
directories or files of a ``classes=`` sweep) as one set in ``OUT`` (a directory or a file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.cli import report_errors
from src.pipelines.merge import merge_shards


def main(argv: list[str] | None = None) -> None:
    """Merge the shards named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", type=Path, help="where the merged set goes (directory or .safetensors)"
    )
    parser.add_argument("shards", nargs="+", type=Path, help="the shards' run directories or files")
    args = parser.parse_args(argv)
    report_errors(merge_shards, args.out, args.shards)


if __name__ == "__main__":
    main()
