"""Accuracy benchmark: random real vs DM vs DM+HDD on Fashion-MNIST, same seeds.

Run with ``make bench-accuracy`` (or ``python -m bench.accuracy``); writes
``bench/results/fashion_mnist_ipc10_dm_vs_hdd.{md,json}``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from src.compare import main as compare_main

OVERRIDES = ["experiment=fashion_mnist_bench"]
NAME = "fashion_mnist_ipc10_dm_vs_hdd"


def main() -> None:
    """Run the comparison and copy its table and summary into bench/results/."""
    out = Path("outputs/bench") / NAME
    command = "python -m src.compare " + " ".join(OVERRIDES) + " --seeds 0"
    compare_main([*OVERRIDES, "--seeds", "0", "--out", str(out), "--command", command])
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    shutil.copyfile(out / "table.md", results / f"{NAME}.md")
    shutil.copyfile(out / "summary.json", results / f"{NAME}.json")
    print(f"wrote {results / NAME}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
