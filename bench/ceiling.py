"""How close one evaluation network's training step comes to this CPU's arithmetic ceiling.

``python -m bench.ceiling [--repeats 10] [--ipc 10]``

Training N evaluation networks together can beat N sequential runs only by the arithmetic
a single run leaves unused. This measures that headroom: the floating-point operations of
a ConvNet's forward and backward on evaluation's batch (counted by
``torch.utils.flop_counter``) per second, against a large float32 matrix product (the
highest rate the machine reaches through torch), alternating. The ceiling on the speed-up
of N networks together over sequential is then (matrix-product rate) / (step rate).
Writes ``bench/results/ceiling.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import machine
from bench.suite import alternate, dataset_cfg, training_steps
from src.io import atomic_write_text
from src.pipelines.components import load_data
from src.rng import make_generator

MATMUL = 2048


def flops(step) -> int:
    """Floating-point operations of one call of ``step`` (matrix products and convolutions)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def matmul_step() -> Callable[[], torch.Tensor]:
    """A 2048 x 2048 float32 matrix product, as a closure."""
    a, b = torch.randn(MATMUL, MATMUL), torch.randn(MATMUL, MATMUL)
    return lambda: torch.mm(a, b)


def main(argv: list[str] | None = None) -> None:
    """Time both, count their operations and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    info, pool = load_data(dataset_cfg("fashion_mnist"))
    idx = pool.random_per_class(args.ipc, make_generator(0, "bench-train")).flatten()
    batch = len(idx)
    train = training_steps(pool.get(idx), pool.labels[idx], info, [batch])
    steps = {"matmul": matmul_step(), "train": train[f"{batch}/pieces"]}
    # The counter sees the calling thread only: count the whole batch, the same arithmetic.
    counted = {"matmul": flops(steps["matmul"]), "train": flops(train[f"{batch}/whole"])}
    times = alternate(steps, args.repeats, 1)
    rate = {name: counted[name] / statistics.median(times[name]) / 1e9 for name in steps}
    ceiling = rate["matmul"] / rate["train"]
    where = machine()
    text = "\n".join([
        f"Command: `python -m bench.ceiling {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
        f"Machine: {where['cpu_model']}, {where['threads']} threads; median of {args.repeats} "
        "after 1 warm-up, alternating.",
        "",
        "| work | GFLOP per call | s per call | GFLOP/s |",
        "|---|---|---|---|",
        f"| float32 matrix product {MATMUL} x {MATMUL} | {counted['matmul'] / 1e9:.1f} | "
        f"{statistics.median(times['matmul']):.3f} | {rate['matmul']:.1f} |",
        f"| evaluation step: ConvNet forward + backward, {batch} images (pieces, workers) | "
        f"{counted['train'] / 1e9:.1f} | {statistics.median(times['train']):.3f} | "
        f"{rate['train']:.1f} |",
        "",
        f"Ceiling on N networks together / sequential: **{ceiling:.2f}x** (the matrix "
        "product's rate over one network's).",
    ])  # fmt: skip
    print(text)
    atomic_write_text(args.out / "ceiling.md", text + "\n")
    record = {"flops": counted, "seconds": times, "gflops_per_s": rate, "ceiling": ceiling,
              "machine": where}  # fmt: skip
    atomic_write_text(args.out / "ceiling.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
