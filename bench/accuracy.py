"""Accuracy benchmark on Fashion-MNIST (experiment=fashion_mnist_bench), same seeds.

``python -m bench.accuracy [--method dm|idm] [--seeds 0 ...]``: IPC 10, 200 iterations,
batch_real 64, 3 evaluation networks x 300 epochs; random real vs METHOD vs METHOD+HDD.
Writes ``bench/results/fashion_mnist_ipc10_<method>_vs_hdd.{md,json}``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from src.compare import main as compare_main


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and copy its table and summary into bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="dm", choices=["dm", "idm"])
    parser.add_argument("--seeds", nargs="+", default=["0"])
    args = parser.parse_args(argv)
    name = f"fashion_mnist_ipc10_{args.method}_vs_hdd"
    out = Path("outputs/bench") / name
    overrides = ["experiment=fashion_mnist_bench", f"method={args.method}"]
    command = "python -m src.compare " + " ".join(overrides) + " --seeds " + " ".join(args.seeds)
    # --resume: a run interrupted (or an invocation stopped) continues where it was.
    compare_main([*overrides, "--seeds", *args.seeds, "--out", str(out), "--command", command,
                  "--resume"])  # fmt: skip
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    shutil.copyfile(out / "table.md", results / f"{name}.md")
    shutil.copyfile(out / "summary.json", results / f"{name}.json")
    print(f"wrote {results / name}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
