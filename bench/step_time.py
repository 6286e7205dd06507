"""Per-iteration time of DM, DM+HDD, IDM and IDM+HDD, side by side in one process.

``python -m bench.step_time [--iterations N] [OVERRIDES...]`` times full outer iterations
(Lightning training steps, warm-up excluded) on Fashion-MNIST IPC 10, batch_real 64 by
default, and writes ``bench/results/step_time.{md,json}`` with ratios to DM.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import lightning as L
import torch

from bench import machine
from src.io import atomic_write_text
from src.pipelines.compare import compose_distill
from src.pipelines.components import build_method, load_data, run_label

VARIANTS = [("dm", "euclidean"), ("dm", "lorentz"), ("idm", "euclidean"), ("idm", "lorentz")]
BASE = ["dataset=fashion_mnist", "ipc=10", "method.batch_real=64", "logger=none"]


class StepTimer(L.Callback):
    """Wall time of each training step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self._start)


def time_variant(
    method: str,
    loss: str,
    iterations: int,
    warmup: int,
    extra: list[str],
    base: list[str] = BASE,
    keep_every: int = 1,
) -> tuple[str, list[float]]:
    """The label of one method x loss and its seconds per outer iteration (warm-up dropped);
    ``keep_every`` k > 1 keeps every k-th real image (a small pool trains experts fast)."""
    cfg = compose_distill([*base, f"method={method}", f"loss={loss}", *extra, "paths.output_dir=x"])
    info, pool = load_data(cfg.dataset)
    if keep_every > 1:
        pool = pool.subset(torch.arange(0, len(pool), keep_every))
    module = build_method(cfg, info, pool)
    module.iterations = warmup + iterations
    timer = StepTimer()
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[timer], accelerator="auto", devices=1,
    )  # fmt: skip
    trainer.fit(module)
    return run_label(cfg), timer.times[warmup:]


def main(argv: list[str] | None = None) -> None:
    """Time every variant, print a Markdown table and save it with the raw numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    rows = {}
    for method, loss in VARIANTS:
        label, times = time_variant(method, loss, args.iterations, args.warmup, args.overrides)
        rows[label] = times
    base = statistics.median(rows["DM"])
    lines = [
        f"Command: `python -m bench.step_time --iterations {args.iterations} "
        + " ".join(args.overrides)
        + "`",
        "",
        f"Fashion-MNIST, IPC 10, batch_real 64 (plus the overrides); median of {args.iterations} "
        f"iterations after {args.warmup} warm-up, one process.",
        "",
        "| method | s / iteration | x DM |",
        "|---|---|---|",
    ]
    for name, times in rows.items():
        med = statistics.median(times)
        lines.append(f"| {name} | {med:.3f} | {med / base:.2f} |")
    table = "\n".join(lines)
    print(table)
    atomic_write_text(args.out / "step_time.md", table + "\n")
    atomic_write_text(
        args.out / "step_time.json",
        json.dumps({"seconds": rows, "machine": machine(), "overrides": args.overrides}, indent=2),
    )


if __name__ == "__main__":
    main()
