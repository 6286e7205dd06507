"""What per-class random streams cost: a step's draws (real batch indices and DSA parameters)
with one generator per class against one generator for all classes.

``python -m bench.streams [--classes 10 100 1000] [--per-class 1300] [--batch 256] [--rounds 5]``

Only the draws are timed (no images are read, no network runs): the part of a step the
streams change (the DSA transform is applied to one 4 x 4 image per class). Each round times
both kinds alternately for every class count; the table gives the median milliseconds per
step. Writes ``bench/results/streams.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from bench import machine
from src.augment import DSA
from src.data import RealPool
from src.io import atomic_write_text
from src.rng import class_generators, make_generator

RESULTS = Path(__file__).parent / "results"


def pool_of(classes: int, per_class: int) -> RealPool:
    """A pool of ``classes`` x ``per_class`` one-pixel images (only its indices are used)."""
    labels = torch.arange(classes).repeat_interleave(per_class)
    return RealPool(torch.zeros(len(labels), 1, 1, 1, dtype=torch.uint8), labels, classes,
                    (0.0,), (1.0,))  # fmt: skip


def step_draws(pool: RealPool, dsa: DSA, batch: int, sample, augment, x: Tensor) -> None:
    """One matching step's draws: every class's real batch, then its DSA transform (applied
    to one 4 x 4 image per class, so the draws dominate)."""
    pool.sample(batch, sample)
    dsa(x, augment, groups=pool.classes, num_groups=len(pool.classes))


def time_kind(pool: RealPool, dsa: DSA, batch: int, per_class: bool, steps: int) -> float:
    """Milliseconds per step of one kind of streams (median of ``steps``)."""
    classes = pool.classes
    if per_class:
        sample, augment = (class_generators(0, s, classes) for s in ("sample", "augment"))
    else:
        sample, augment = make_generator(0, "sample"), make_generator(0, "augment")
    x, times = torch.zeros(len(classes), 1, 4, 4), []
    for _ in range(steps):
        started = time.perf_counter()
        step_draws(pool, dsa, batch, sample, augment, x)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    """Time both kinds of streams for each class count; write the table and the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--per-class", type=int, default=1300)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    dsa = DSA()
    given = sys.argv[1:] if argv is None else argv
    record = {"command": " ".join(["python -m bench.streams", *given]), "machine": machine()}
    record["ms_per_step"] = {str(c): {"shared": [], "per_class": []} for c in args.classes}
    pools = {c: pool_of(c, args.per_class) for c in args.classes}
    for _ in range(args.rounds):
        for c in args.classes:
            for kind in ("shared", "per_class"):
                ms = time_kind(pools[c], dsa, args.batch, kind == "per_class", args.steps)
                record["ms_per_step"][str(c)][kind].append(ms)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "streams.json", json.dumps(record, indent=1) + "\n")
    atomic_write_text(RESULTS / "streams.md", table(record, args) + "\n")
    print(table(record, args))


def table(record: dict, args: argparse.Namespace) -> str:
    """Median ms per step of each kind of streams, per class count."""
    lines = [
        f"### Per-class random streams: a step's draws ({args.per_class} images per class, "
        f"batch_real {args.batch}, DSA's six ops; `{record['command'].strip()}`)",
        "",
        "| classes | one generator (ms/step) | a generator per class (ms/step) | ratio |",
        "|---|---|---|---|",
    ]
    for c, kinds in record["ms_per_step"].items():
        shared, per = statistics.median(kinds["shared"]), statistics.median(kinds["per_class"])
        lines.append(f"| {c} | {shared:.2f} | {per:.2f} | {per / shared:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
