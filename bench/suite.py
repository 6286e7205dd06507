"""Performance suite: ours vs the field's plain scripts, side by side in one process.

``python -m bench [--ipc 10] [--batch-real 256] [--iterations 5] [--eval-epochs 30] [--out DIR]``

- distill step: an iteration of ``DistillModule`` vs a per-class baseline written here the
  way the field's scripts do it (a Python loop over classes, one small forward per class,
  float32 real data on the device), for both losses, eager and compiled, and ours with the
  real images in one forward vs in ``embed_chunk`` chunks, and the chunks in the calling
  thread vs on the piece workers (one intra-op thread each); all variants alternate per
  iteration; HDD's overhead (the two losses timed alternately on the same features,
  relative to the step);
- training step: a ConvNet's forward and backward on evaluation's batch and on IDM's
  256-image pool batch, whole vs in ``train_chunk`` pieces, and those pieces in the
  calling thread vs on the piece workers;
- evaluation: ``evaluate_set`` with one network vs a plain PyTorch loop of the same
  protocol (steps, batches, DSA, SGD, step decay, test pass), and N networks trained
  together vs N sequential runs, and one step of N networks as a loop vs ``torch.vmap`` vs
  grouped convolutions (bench/stacking.py);
- memory: the real pool as uint8 vs float32, and (on a GPU) the peak memory of a step.

Fashion-MNIST by default (offline). Prints a Markdown table and writes
``bench/results/suite[_<tag>].{md,json}`` with the machine description.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from bench import machine, sync
from bench.stacking import stacked_step_times
from bench.step_time import time_variant
from src.augment import DSA
from src.compute import Compute, set_piece_workers
from src.evaluation import EvalProtocol, evaluate_set
from src.io import atomic_write_text
from src.matching import EuclideanMeanLoss, LorentzCentroidLoss
from src.models import build_model, init_weights_
from src.pipelines.compare import compose_distill
from src.pipelines.components import build_method, load_data
from src.rng import make_generator


def dataset_cfg(name: str) -> DictConfig:
    """The composed ``dataset`` node of data set ``name``."""
    return compose_distill([f"dataset={name}", "paths.output_dir=x"]).dataset


def per_class_step(dataset: str, ipc: int, batch_real: int, loss_name: str) -> Callable[[], None]:
    """One DM iteration written as the field's scripts do (one class at a time), as a closure."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info, pool = load_data(dataset_cfg(dataset))
    # The scripts keep the whole training set as normalised float32 on the device.
    real = pool.get(torch.arange(len(pool))).to(device)
    by_class = [real[pool.labels == c] for c in range(info.num_classes)]
    syn = torch.cat([x[:ipc] for x in by_class]).clone().requires_grad_()
    net = build_model("convnet", info.channels, info.num_classes, info.im_size).to(device)
    net.requires_grad_(False)
    loss_fn = LorentzCentroidLoss(1.0, 20.0) if loss_name == "lorentz" else EuclideanMeanLoss()
    augment = DSA()
    opt = torch.optim.SGD([syn], lr=1.0, momentum=0.5)
    gen, gen_net = make_generator(0, "bench"), make_generator(0, "bench-net", device)

    def step() -> None:
        init_weights_(net, gen_net)
        loss = torch.zeros((), device=device)
        for c, x in enumerate(by_class):
            idx = torch.randperm(len(x), generator=gen)[:batch_real].to(device)
            both = augment(torch.cat([x[idx], syn[c * ipc : (c + 1) * ipc]]), gen)
            with torch.no_grad():
                f_real = net.embed(both[:batch_real])
            f_syn = net.embed(both[batch_real:])
            weights = torch.ones(1, len(idx), device=device)
            loss = loss + loss_fn(f_real[None], weights, f_syn[None]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def our_step(loss: str, overrides: list[str]) -> Callable[[], None]:
    """One iteration of our ``DistillModule`` (its training step, backward and SGD step).

    Driven directly rather than by a Trainer, so that variants can alternate; Lightning's
    own loop adds about a millisecond to a step of seconds.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = compose_distill(["method=dm", f"loss={loss}", *overrides, "paths.output_dir=x"])
    info, pool = load_data(cfg.dataset)
    module = build_method(cfg, info, pool).to(device)
    module.log = lambda *args, **kwargs: None  # no Trainer to log to
    module.setup("fit")
    opt = module.configure_optimizers()
    iteration = itertools.count()

    def step() -> None:
        out = module.training_step(next(iteration), 0)
        opt.zero_grad()
        out.backward()
        opt.step()

    return step


def in_one_thread(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` with its pieces run in the calling thread (torch's intra-op threads)."""

    def run() -> None:
        set_piece_workers(1)
        try:
            step()
        finally:
            set_piece_workers(None)

    return run


def alternate(
    steps: dict[str, Callable[[], None]], iterations: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per iteration of every variant, run in turn each round (warm-up rounds dropped).

    Alternating gives every variant the same share of a machine whose speed drifts.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(warmup + iterations):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def loss_times(
    dataset: str, ipc: int, batch_real: int, repeats: int
) -> tuple[list[float], list[float]]:
    """Seconds of the Euclidean and of the HDD loss, forward + backward, on the same features.

    Features of real images from a random ConvNet, shaped as in a DM step (C, batch_real, D)
    and (C, ipc, D); the two losses alternate so both see the same machine load. The rest of
    a step is the same for both losses, so their difference is HDD's whole overhead.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info, pool = load_data(dataset_cfg(dataset))
    net = build_model("convnet", info.channels, info.num_classes, info.im_size).to(device)
    init_weights_(net, make_generator(0, "bench-loss", device))
    pool.to(device)
    gen = make_generator(0, "bench-loss")
    with torch.no_grad():
        idx, weights = pool.sample(batch_real, gen)
        real = net.embed(pool.get(idx)).view(*idx.shape, -1)
        syn_idx = pool.random_per_class(ipc, gen).to(device)
        syn = net.embed(pool.get(syn_idx)).view(*syn_idx.shape, -1)
    weights = weights.to(device)
    losses = (EuclideanMeanLoss(), LorentzCentroidLoss(1.0, 20.0))
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(repeats + 1):  # the first round warms up
        for loss_fn, out in zip(losses, times, strict=True):
            leaf = syn.clone().requires_grad_()
            sync(device)
            start = time.perf_counter()
            loss_fn(real, weights, leaf).sum().backward()
            sync(device)
            if r:
                out.append(time.perf_counter() - start)
    return times


def plain_eval_loop(images, labels, test_pool, info, epochs: int, seed: int) -> float:
    """Seconds for one network trained by the protocol in a plain loop, then tested."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images, labels = images.to(device), labels.to(device)
    start = time.perf_counter()
    net = build_model("convnet", info.channels, info.num_classes, info.im_size).to(device)
    init_weights_(net, make_generator(seed, "plain-init"))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    batch = min(256, len(images))
    steps_per_epoch = math.ceil(len(images) / batch)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [epochs * steps_per_epoch // 2], 0.1)
    augment, gen = DSA(), make_generator(seed, "plain")
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen).to(device)
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            loss = F.cross_entropy(net(augment(images[idx], gen)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    correct = 0
    with torch.no_grad():
        net.eval()
        for i in range(0, len(test_pool), 1024):
            idx = torch.arange(i, min(i + 1024, len(test_pool)))
            correct += int((net(test_pool.get(idx)).argmax(1) == test_pool.labels[idx]).sum())
    sync(device)
    return time.perf_counter() - start


def training_steps(
    images: torch.Tensor, labels: torch.Tensor, info, batch_sizes: list[int]
) -> dict[str, Callable[[], None]]:
    """A ConvNet's forward and backward (no optimiser step) per batch size, two ways.

    The whole batch at once (the field's scripts) and in ``train_chunk=auto`` pieces (our
    evaluation and IDM pool networks); to be alternated.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = build_model("convnet", info.channels, info.num_classes, info.im_size).to(device)
    steps: dict[str, Callable[[], None]] = {}
    for n in batch_sizes:
        x, y = images[:n].to(device), labels[:n].to(device)
        auto = Compute.for_net("auto", "train_chunk", net, device, "train")
        for kind, compute in (("whole", Compute()), ("pieces", auto)):

            def step(x=x, y=y, compute=compute) -> None:
                net.zero_grad(set_to_none=True)
                compute.cross_entropy_backward(net, x, y)
                sync(device)

            steps[f"{n}/{kind}"] = step
        steps[f"{n}/pieces_one_thread"] = in_one_thread(steps[f"{n}/pieces"])
    return steps


def time_evaluate(images, labels, test_pool, info, epochs: int, num_models: int) -> float:
    """Seconds of ``evaluate_set`` (our EvalModule) for ``num_models`` networks."""
    start = time.perf_counter()
    evaluate_set(
        images, labels, test_pool,
        lambda: build_model("convnet", info.channels, info.num_classes, info.im_size),
        DSA(), EvalProtocol(num_models=num_models, epochs=epochs), progress=False,
        make_trainer=partial(L.Trainer, accelerator="auto"),
    )  # fmt: skip
    return time.perf_counter() - start


Row = tuple[str, str, str]  # comparison, times, ratio
med = statistics.median


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The suite's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--eval-epochs", type=int, default=30)
    parser.add_argument("--eval-models", type=int, default=5)
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser.parse_args(argv)


def distill_step_times(args: argparse.Namespace, common: list[str]) -> dict[str, list[float]]:
    """Both losses: the per-class baseline and our step (eager, torch.compile'd embedding,
    eager with the real images in one forward, pieces in one thread), alternated per
    iteration; compile time falls into the warm-up."""
    steps: dict[str, Callable[[], None]] = {}
    for loss in ("euclidean", "lorentz"):
        steps[f"{loss}/per_class"] = per_class_step(args.dataset, args.ipc, args.batch_real, loss)
        for compiled in ("false", "true"):
            steps[f"{loss}/compile_{compiled}"] = our_step(
                loss, [*common, f"method.compile_net={compiled}"]
            )
    one_forward = [*common, "method.compile_net=false", "method.embed_chunk=1000000"]
    steps["euclidean/one_real_forward"] = our_step("euclidean", one_forward)
    for compiled in ("false", "true"):
        steps[f"euclidean/compile_{compiled}/one_thread"] = in_one_thread(
            our_step("euclidean", [*common, f"method.compile_net={compiled}"])
        )
    return alternate(steps, args.iterations, max(args.warmup, 1))


def distill_rows(args: argparse.Namespace, common: list[str], raw: dict) -> list[Row]:
    """The distill step against the per-class loop, whole vs pieces, and HDD's overhead."""
    times = raw["distill"] = distill_step_times(args, common)
    rows: list[Row] = []
    ours: dict[tuple[str, str], float] = {}
    for loss in ("euclidean", "lorentz"):
        base = med(times[f"{loss}/per_class"])
        for compiled, kind in (("false", "eager"), ("true", "compiled")):
            ours[loss, compiled] = mine = med(times[f"{loss}/compile_{compiled}"])
            rows.append((f"distill step, {loss}: per-class / ours ({kind})",
                         f"{base:.3f} s / {mine:.3f} s",
                         f"**{base / mine:.2f}x** (target >= 1.5x)"))  # fmt: skip
    whole, chunked = med(times["euclidean/one_real_forward"]), ours["euclidean", "false"]
    rows.append(("distill step, euclidean, eager: real images in one forward / in chunks (auto)",
                 f"{whole:.3f} s / {chunked:.3f} s",
                 f"**{whole / chunked:.2f}x** (above 1x chunking pays)"))  # fmt: skip
    for compiled, kind in (("false", "eager"), ("true", "compiled")):
        one_thread = med(times[f"euclidean/compile_{compiled}/one_thread"])
        workers = ours["euclidean", compiled]
        rows.append((f"distill step, euclidean, {kind}: chunks in one thread / on workers",
                     f"{one_thread:.3f} s / {workers:.3f} s",
                     f"**{one_thread / workers:.2f}x** (above 1x the workers pay)"))  # fmt: skip
    for compiled, kind in (("false", "eager"), ("true", "compiled")):
        lor, euc = ours["lorentz", compiled], ours["euclidean", compiled]
        rows.append((f"DM+HDD step vs DM step, {kind}",
                     f"{lor:.3f} s vs {euc:.3f} s",
                     f"{100 * (lor / euc - 1):+.1f}%"))  # fmt: skip
    return rows + hdd_overhead_rows(args, ours, raw)


def hdd_overhead_rows(args: argparse.Namespace, ours: dict, raw: dict) -> list[Row]:
    """The overhead itself, paired: both losses on the same features, alternated."""
    euc_loss, hdd_loss = loss_times(args.dataset, args.ipc, args.batch_real, 4 * args.iterations)
    raw["loss_seconds"] = {"euclidean": euc_loss, "lorentz": hdd_loss}
    extra = med(hdd_loss) - med(euc_loss)
    rows: list[Row] = []
    for compiled, kind in (("false", "eager"), ("true", "compiled")):
        step = ours["euclidean", compiled]
        rows.append((f"HDD loss overhead: (HDD - Euclidean loss, fwd+bwd) / DM step, {kind}",
                     f"({1e3 * med(hdd_loss):.1f} - {1e3 * med(euc_loss):.1f}) ms / {step:.3f} s",
                     f"**{100 * extra / step:+.1f}%** (target <= 10%)"))  # fmt: skip
    return rows


def train_step_rows(args: argparse.Namespace, info, pool, raw: dict) -> list[Row]:
    """A training step whole vs in pieces (evaluation's batch, and IDM's 256-image batches)."""
    batches = sorted({min(256, args.ipc * info.num_classes), 256})
    idx = pool.random_per_class(math.ceil(256 / info.num_classes), make_generator(0, "bench-train"))
    x, y = pool.get(idx.flatten()), pool.labels[idx.flatten()]
    times = raw["train_step"] = alternate(
        training_steps(x, y, info, batches), 2 * args.iterations, 1
    )
    rows: list[Row] = []
    for n in batches:
        whole, pieces = med(times[f"{n}/whole"]), med(times[f"{n}/pieces"])
        one_thread = med(times[f"{n}/pieces_one_thread"])
        rows.append((f"training step of a ConvNet, {n} images: whole batch / pieces (auto)",
                     f"{whole:.3f} s / {pieces:.3f} s",
                     f"**{whole / pieces:.2f}x** (above 1x pieces pay)"))  # fmt: skip
        rows.append((f"training step of a ConvNet, {n} images: pieces in one thread / on workers",
                     f"{one_thread:.3f} s / {pieces:.3f} s",
                     f"**{one_thread / pieces:.2f}x** (above 1x the workers pay)"))  # fmt: skip
    return rows


def evaluation_rows(args: argparse.Namespace, info, pool, test_pool, raw: dict) -> list[Row]:
    """Evaluation on a real subset of IPC images per class (a set's work): ours vs a plain
    loop, N networks together vs sequential, and the stacked alternatives."""
    idx = pool.random_per_class(args.ipc, make_generator(0, "bench-eval")).flatten()
    images, labels = pool.get(idx), pool.labels[idx]

    def seconds(epochs: int, num_models: int) -> float:
        return time_evaluate(images, labels, test_pool, info, epochs, num_models)

    seconds(2, 1)  # warm-up
    one = seconds(args.eval_epochs, 1)
    plain = plain_eval_loop(images, labels, test_pool, info, args.eval_epochs, 0)
    together = seconds(args.eval_epochs, args.eval_models)
    sequential = sum(seconds(args.eval_epochs, 1) for _ in range(args.eval_models))
    raw["eval"] = {"ours_1": one, "plain_1": plain, "together": together, "sequential": sequential}
    rows: list[Row] = [
        (f"evaluation, 1 network, {args.eval_epochs} epochs: ours / plain loop",
         f"{one:.2f} s / {plain:.2f} s", f"**{one / plain:.2f}x** (target <= 1.1x)"),
        (f"evaluation, {args.eval_models} networks: sequential / together",
         f"{sequential:.2f} s / {together:.2f} s",
         f"**{sequential / together:.2f}x** (target >= 2x)"),
    ]  # fmt: skip
    # The stacked alternatives the issue names, measured rather than assumed.
    stacked = stacked_step_times(images, labels, info, args.eval_models, 2 * args.iterations)
    raw["eval"] |= {f"step_{name}": t for name, t in stacked.items()}
    loop = med(stacked["loop"])
    for name, label in (("vmap", "torch.vmap"), ("grouped", "grouped convolutions")):
        other = med(stacked[name])
        rows.append((f"{args.eval_models} networks, one training step: loop (ours) / {label}",
                     f"{loop:.3f} s / {other:.3f} s",
                     f"**{loop / other:.2f}x** (above 1x stacking would pay)"))  # fmt: skip
    return rows


def memory_rows(pool, common: list[str], raw: dict) -> list[Row]:
    """The real pool as uint8 vs float32, and (on a GPU) the peak memory of a step."""
    uint8_bytes = pool.images.numel() * pool.images.element_size()
    raw["pool_bytes"] = {"uint8": uint8_bytes, "float32": 4 * uint8_bytes}
    rows: list[Row] = [("real pool memory: uint8 / float32",
                        f"{uint8_bytes / 2**20:.1f} MiB / {4 * uint8_bytes / 2**20:.1f} MiB",
                        f"**{1 / 4:.2f}** (target 1/4)")]  # fmt: skip
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        time_variant("dm", "lorentz", 1, 0, common)
        peak = raw["peak_step_bytes"] = torch.cuda.max_memory_allocated()
        rows.append(("peak GPU memory of a DM+HDD run (pool on the device)",
                     f"{peak / 2**20:.0f} MiB", ""))  # fmt: skip
    return rows


def write_suite(args: argparse.Namespace, command: str, rows: list[Row], raw: dict) -> None:
    """Print the table; write it and the raw times with the machine description."""
    where = machine()
    lines = [
        f"Command: `{command.strip()}`  ",
        f"{args.dataset}, IPC {args.ipc}, batch_real {args.batch_real}, ConvNet; distill variants "
        f"alternate per iteration; median of "
        f"{args.iterations} iterations after {args.warmup} warm-up; machine: "
        f"{where['cuda'] or where['processor'] or platform.machine()}, {where['threads']} threads.",
        "",
        "| comparison | times | ratio |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
    ]
    table = "\n".join(lines)
    print(table)
    name = "suite" + (f"_{args.tag}" if args.tag else "")
    atomic_write_text(args.out / f"{name}.md", table + "\n")
    summary = {"args": vars(args) | {"out": str(args.out)}, "raw": raw, "machine": where}
    atomic_write_text(args.out / f"{name}.json", json.dumps(summary, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Run every comparison and write the table."""
    args = parse_args(argv)
    common = [f"dataset={args.dataset}", f"ipc={args.ipc}", f"method.batch_real={args.batch_real}"]
    raw: dict = {}
    rows = distill_rows(args, common, raw)
    info, pool = load_data(dataset_cfg(args.dataset))
    _, test_pool = load_data(dataset_cfg(args.dataset), train=False)
    rows += train_step_rows(args, info, pool, raw)
    rows += evaluation_rows(args, info, pool, test_pool, raw)
    rows += memory_rows(pool, common, raw)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    write_suite(args, command, rows, raw)


if __name__ == "__main__":
    main()
