"""Accuracy benchmark on Fashion-MNIST (experiment=fashion_mnist_bench), same seeds.

``python -m bench.accuracy [--method dm|idm] [--seeds 0 ...]``: IPC 10, 200 iterations,
batch_real 64, 3 evaluation networks x 300 epochs; random real vs METHOD vs METHOD+HDD.
Writes ``bench/results/fashion_mnist_ipc10_<method>_vs_hdd.{md,json}``. The IDM table also
carries the DM and DM+HDD rows of the DM benchmark (same budget, seeds and evaluation
networks) and the per-iteration time of IDM relative to DM from ``bench.step_time``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from src.compare import main as compare_main
from src.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"


def dm_rows(results: Path, seeds: list[str]) -> list[str]:
    """Table rows for DM and DM+HDD read from the DM benchmark, if it ran with these seeds."""
    path = results / "fashion_mnist_ipc10_dm_vs_hdd.json"
    if not path.is_file():
        return []
    runs = json.loads(path.read_text())["runs"]
    rows = []
    for label, run in runs.items():
        if [str(run["seed"])] != seeds:  # only rows that share every seed are comparable
            continue
        accs = run["distilled"]["accuracies"]
        cell = f"{statistics.fmean(accs):.2f} ± {statistics.pstdev(accs):.2f}"  # as src.compare
        secs = f"{run['distill_seconds']:.0f}"
        rows.append(f"| {label} (from `{path.name}`) | {cell} | {len(accs)} | {secs} |")
    return rows


def step_ratio_line(results: Path) -> str | None:
    """One sentence with the median s/iteration of IDM and DM from bench.step_time."""
    path = results / "step_time.json"
    if not path.is_file():
        return None
    seconds = json.loads(path.read_text())["seconds"]

    med = {name: statistics.median(xs) for name, xs in seconds.items()}
    if "IDM" not in med or "DM" not in med:
        return None
    return (
        f"Per iteration (`python -m bench.step_time`, one process, same machine): DM "
        f"{med['DM']:.2f} s, DM+HDD {med['DM+HDD']:.2f} s, IDM {med['IDM']:.2f} s "
        f"({med['IDM'] / med['DM']:.1f}x DM), IDM+HDD {med['IDM+HDD']:.2f} s "
        f"({med['IDM+HDD'] / med['DM']:.1f}x DM)."
    )


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
    RESULTS.mkdir(exist_ok=True)
    table = (out / "table.md").read_text()
    if args.method == "idm":
        extra = dm_rows(RESULTS, args.seeds)
        ratio = step_ratio_line(RESULTS)
        table = table.rstrip("\n") + "\n" + "".join(f"{row}\n" for row in extra)
        if ratio:
            table += f"\n{ratio}\n"
    atomic_write_text(RESULTS / f"{name}.md", table)
    atomic_write_text(RESULTS / f"{name}.json", (out / "summary.json").read_text())
    print(f"wrote {RESULTS / name}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
