"""Entry point: ``python -m src.compare [--losses euclidean lorentz] [--seeds 0 1] OVERRIDES...``.

Distills with every listed loss on the same seeds, evaluates each set and the
random real baseline with the same evaluation networks, and prints one table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from src.cli import report_errors
from src.io import atomic_write_text
from src.pipelines.compare import run_compare


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the comparison, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    parser.add_argument("--losses", nargs="+", default=["euclidean", "lorentz"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--method", default=None, help="dm or idm (default: the config's)")
    parser.add_argument("--out", type=Path, default=Path("outputs/compare"))
    parser.add_argument("--command", default=None, help="command line to record with the table")
    parser.add_argument(
        "--resume", action="store_true", help="reuse finished runs in --out, resume the others"
    )
    args = parser.parse_args(argv)
    result = report_errors(
        run_compare, args.overrides, args.losses, args.seeds, args.out, args.method, args.resume
    )
    text = result["table"]
    if args.command:
        text = f"Command: `{args.command}`\n\n{text}"
    print("\n" + text)
    atomic_write_text(args.out / "table.md", text + "\n")
    atomic_write_text(args.out / "summary.json", json.dumps(result["summary"], indent=2) + "\n")


if __name__ == "__main__":
    main()
