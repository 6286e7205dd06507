"""What the DM family study costs on this machine, measured before it is run.

``python -m bench.study_cost`` times, one thing after another in one process, at the study's
settings (``experiment=study/dm_family``: Fashion-MNIST, batch_real 64):
- one outer iteration of every method at IPC 1 and 10 (bench/step_time.py's timer; the
  expert pools here are tiny, which does not change an iteration's cost);
- one epoch of each expert pool's training (DANCE's and NCFM's ConvNets, IID's ResNet-18),
  from a few steps at the pool's batch size and augmentation;
- one evaluation network (300 epochs and the test pass) at IPC 1 and 10;
and writes ``bench/results/study_cost.{md,json}`` with the CPU-hours of the study's cells.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench import machine
from bench.step_time import time_variant
from src.augment import DSA
from src.data.pool import RealPool
from src.io import atomic_write_text
from src.methods.experts import train_step
from src.pipelines.compare import compose_distill
from src.pipelines.components import build_evaluator, build_method, load_data

STUDY = ["experiment=fashion_mnist_bench", "logger=none", "geometry.enabled=false"]
TINY_POOL = ["method.experts.num_experts=1", "method.experts.epochs=1"]
METHODS = {  # the study's rows: (method, IPCs, extra overrides for timing)
    "dm": ((1, 10), []),
    "datadam": ((1, 10), []),
    "dance": ((1, 10), TINY_POOL),
    "ncfm": ((1, 10), [*TINY_POOL, "method.batch_real=64"]),
    "iid": ((1, 10), TINY_POOL),
    "idm": ((1,), []),
    "idm_iid": ((1,), TINY_POOL),
}
POOLS = {"dance": "method=dance", "ncfm": "method=ncfm", "iid": "method=iid"}


def iteration_seconds(data_dir: str, iterations: int) -> dict[str, float]:
    """Median seconds per outer iteration, ``<method> ipc<n>`` -> s."""
    out = {}
    for method, (ipcs, extra) in METHODS.items():
        for ipc in ipcs:
            base = [*STUDY, f"ipc={ipc}", f"paths.data_dir={data_dir}", *extra]
            n = max(2, iterations // 3) if method.startswith("idm") else iterations
            keep = 50 if extra else 1  # the expert methods: a pool of 2% of the images
            _, times = time_variant(method, "euclidean", n, 1, base, base=[], keep_every=keep)
            out[f"{method} ipc{ipc}"] = statistics.median(times)
            print(f"{method} ipc{ipc}: {out[f'{method} ipc{ipc}']:.3f} s / iteration", flush=True)
    return out


def expert_epoch_seconds(steps: int) -> dict[str, float]:
    """Seconds per epoch of each method's expert pool on the full training set (the network
    and protocol the method itself trains its pool with)."""
    out = {}
    for method, override in POOLS.items():
        cfg = compose_distill([*STUDY, override, "paths.output_dir=x"])
        info, pool = load_data(cfg.dataset)
        experts = build_method(cfg, info, pool).expert_pool()
        out[method] = _epoch(experts.net_factory(), pool, experts.protocol, steps)
        print(f"{method} expert epoch: {out[method]:.1f} s", flush=True)
    return out


def _epoch(net: torch.nn.Module, pool: RealPool, protocol, steps: int) -> float:
    opt = torch.optim.SGD(net.parameters(), lr=protocol.lr, momentum=protocol.momentum)
    gen = torch.Generator().manual_seed(0)
    augment = DSA(strategy=protocol.augment) if protocol.augment else None
    batches = torch.randperm(len(pool), generator=gen).split(protocol.batch_size)
    times = []
    for idx in batches[: steps + 1]:
        start = time.perf_counter()
        train_step(net, opt, pool.get(idx), pool.labels[idx], gen, augment, protocol.cutmix)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * len(batches)


def evaluation_seconds(epochs: int) -> dict[str, float]:
    """Seconds of one evaluation network at the study's 300 epochs, IPC 1 and 10 (a random
    real set), from two shorter trainings: fixed part + per-epoch part."""
    out = {}
    cfg = compose_distill([*STUDY, "paths.output_dir=x"])
    info, pool = load_data(cfg.dataset)
    _, test = load_data(cfg.dataset, train=False)
    for ipc in (1, 10):
        idx = pool.random_per_class(ipc, torch.Generator().manual_seed(0)).reshape(-1)
        timed = {}
        for e in (epochs, 2 * epochs):
            cfg = compose_distill([*STUDY, f"ipc={ipc}", "eval.num_models=1", f"eval.epochs={e}",
                                   "paths.output_dir=x"])  # fmt: skip
            evaluate = build_evaluator(cfg, info, test, DSA())
            start = time.perf_counter()
            evaluate(pool.get(idx), pool.labels[idx])
            timed[e] = time.perf_counter() - start
        per_epoch = (timed[2 * epochs] - timed[epochs]) / epochs
        out[f"ipc{ipc}"] = timed[epochs] + (300 - epochs) * per_epoch
        print(f"evaluation network, ipc{ipc}: {out[f'ipc{ipc}']:.1f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure, then write the table of costs per cell and for the study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--expert-steps", type=int, default=20)
    parser.add_argument("--eval-epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as data_dir:
        iteration = iteration_seconds(data_dir, args.iterations)
    experts = expert_epoch_seconds(args.expert_steps)
    evaluation = evaluation_seconds(args.eval_epochs)
    record = {"iteration": iteration, "expert_epoch": experts, "eval_network": evaluation,
              "machine": machine()}  # fmt: skip
    atomic_write_text(args.out / "study_cost.json", json.dumps(record, indent=2) + "\n")
    table = cost_table(record)
    print(table)
    atomic_write_text(args.out / "study_cost.md", table + "\n")


def cost_table(record: dict, iterations: int = 200, networks: int = 3) -> str:
    """Markdown: per method and IPC, minutes per run (200 iterations + 3 networks)."""
    lines = [
        "Measured by `python -m bench.study_cost` (one process, one thing at a time).",
        "",
        f"One run: {iterations} iterations + {networks} evaluation networks x 300 epochs "
        "(the random real baseline once per IPC and seed: it is reused from the record).",
        "",
        "| method, IPC | s / iteration | min / run | x DM |",
        "|---|---|---|---|",
    ]
    for key, seconds in record["iteration"].items():
        ipc = key.split()[-1]
        run = (iterations * seconds + networks * record["eval_network"][ipc]) / 60
        dm = (iterations * record["iteration"][f"dm {ipc}"]
              + networks * record["eval_network"][ipc]) / 60  # fmt: skip
        lines.append(f"| {key} | {seconds:.3f} | {run:.1f} | {run / dm:.1f} |")
    lines += ["", "| expert pool | s / epoch (full training set) |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in record["expert_epoch"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
