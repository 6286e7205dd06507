"""Cost of a cross-architecture evaluation against the single-architecture ones it replaces.

``python -m bench.cross_arch [--models convnet alexnet vgg11 resnet18] [--epochs 20]``

A 100-image set (Fashion-MNIST IPC 10, real images) is evaluated (A) by
``evaluate_across`` over the listed architectures, and (B) by one single-architecture
evaluation per architecture, as a user scripting the table would run them; A and B
alternate ``--repeats`` times and the median of each is compared. Both train the same
networks for the same steps, so the ratio A / B measures the pool's bookkeeping.
Writes ``bench/results/cross_arch.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench import machine
from src.io import atomic_write_text
from src.methods.base import initial_synthetic_set
from src.pipelines.compare import compose_distill
from src.pipelines.components import build_augment, build_evaluator, load_data
from src.pipelines.cross_arch import architecture_specs, evaluate_across
from src.rng import make_generator


def timed(fn) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    """Time the pool evaluation against the per-architecture ones, alternating."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["convnet", "alexnet", "vgg11", "resnet18"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--num-models", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    cfg = compose_distill(
        ["dataset=fashion_mnist", f"eval.models=[{','.join(args.models)}]", "logger=none",
         f"eval.epochs={args.epochs}", f"eval.num_models={args.num_models}"],
    )  # fmt: skip
    info, train = load_data(cfg.dataset, train=True)
    _, test = load_data(cfg.dataset, train=False)
    images, labels = initial_synthetic_set(train, 10, "real", make_generator(0, "init"))
    augment = build_augment(cfg.augment)
    sets = {"distilled": (images, labels, 1)}

    def pool() -> None:
        evaluate_across(cfg, info, test, augment, sets)

    def singles() -> None:
        for spec in architecture_specs(cfg).values():
            build_evaluator(cfg, info, test, augment, model_cfg=spec)(images, labels)

    times: dict[str, list[float]] = {"pool": [], "singles": []}
    for _ in range(args.repeats):
        times["pool"].append(timed(pool))
        times["singles"].append(timed(singles))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["pool"] / med["singles"]
    table = (
        f"### Cross-architecture evaluation of a 100-image set: {', '.join(args.models)}, "
        f"{args.num_models} network(s) x {args.epochs} epochs each, median of {args.repeats} "
        f"alternated repeats\n\n`python -m bench.cross_arch --epochs {args.epochs}`\n\n"
        "| evaluation | seconds | ratio |\n|---|---|---|\n"
        f"| one per architecture (the sum) | {med['singles']:.1f} | 1.00 |\n"
        f"| `eval.models` (one pool) | {med['pool']:.1f} | {ratio:.2f} |\n"
    )
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "cross_arch.md", table)
    record = {"times": times, "median": med, "ratio": ratio, "args": vars(args) | {"out": None}}
    record["machine"] = machine()
    atomic_write_text(args.out / "cross_arch.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
