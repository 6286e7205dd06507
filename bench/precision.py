"""float32 against bfloat16 autocast on this CPU, side by side in one process.

``python -m bench.precision [--iterations 3] [--batch-real 256]``

- the ConvNet embedding of 10 x batch_real real Fashion-MNIST images in pieces of 32
  (no grad: a DM step's real half);
- a DM+HDD distillation step (IPC 10), eager and compiled: our training step, backward and
  SGD step, inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` as Lightning's
  ``bf16-mixed`` runs it, or not;
- an evaluation training step (a ConvNet's forward and backward on 100 images, in pieces);
- fidelity: the gradient of the synthetic images under bf16 against float32 (DM and
  DM+HDD on the same network and 64 real images per class), as cosine and relative error.

Every pair alternates per iteration. Writes ``bench/results/precision.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from bench import machine
from bench.suite import alternate, dataset_cfg, our_step, training_steps
from src.io import atomic_write_text
from src.matching import EuclideanMeanLoss, LorentzCentroidLoss
from src.models import build_model, init_weights_
from src.pipelines.components import load_data
from src.rng import make_generator

med = statistics.median


def in_bf16(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` under CPU bfloat16 autocast (what ``trainer.precision=bf16-mixed`` does)."""

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            step()

    return run


def both(step: Callable[[], None]) -> dict[str, Callable[[], None]]:
    """The float32 and bfloat16 variants of ``step``."""
    return {"fp32": step, "bf16": in_bf16(step)}


def embedding_step(images: torch.Tensor, net: torch.nn.Module) -> Callable[[], None]:
    """The embedding of ``images`` in pieces of 32 without gradients."""

    def step() -> None:
        with torch.no_grad():
            for i in range(0, len(images), 32):
                net.embed(images[i : i + 32])

    return step


def image_gradients(real, syn, net, loss_fn) -> dict[str, torch.Tensor]:
    """The gradient of the synthetic images in float32 and under bf16 autocast."""
    grads = {}
    for name, enabled in (("fp32", False), ("bf16", True)):
        leaf = syn.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            f_real = net.embed(real.flatten(0, 1)).view(*real.shape[:2], -1)
            f_syn = net.embed(leaf.flatten(0, 1)).view(*leaf.shape[:2], -1)
            weights = torch.ones(real.shape[:2])
            loss_fn(f_real.float(), weights, f_syn.float()).sum().backward()
        grads[name] = leaf.grad.flatten()
    return grads


def fidelity(pool, info, ipc: int, batch_real: int) -> dict[str, dict[str, float]]:
    """Cosine and relative error of bf16's image gradient against float32's, per loss."""
    gen = make_generator(0, "bench-precision")
    real = pool.get(pool.random_per_class(batch_real, gen).flatten())
    syn = pool.get(pool.random_per_class(ipc, gen).flatten())
    real = real.view(info.num_classes, batch_real, *real.shape[1:])
    syn = syn.view(info.num_classes, ipc, *syn.shape[1:])
    net = build_model("convnet", info.channels, info.num_classes, info.im_size)
    init_weights_(net, make_generator(0, "bench-precision-net"))
    net.requires_grad_(False)
    out = {}
    for name, loss_fn in (("DM", EuclideanMeanLoss()), ("DM+HDD", LorentzCentroidLoss(1.0, 20.0))):
        g = image_gradients(real, syn, net, loss_fn)
        cosine = torch.nn.functional.cosine_similarity(g["fp32"], g["bf16"], dim=0)
        error = (g["bf16"] - g["fp32"]).norm() / g["fp32"].norm()
        out[name] = {"cosine": float(cosine), "relative_error": float(error)}
    return out


def main(argv: list[str] | None = None) -> None:
    """Time each pair, measure the gradients' agreement and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    info, pool = load_data(dataset_cfg("fashion_mnist"))
    net = build_model("convnet", info.channels, info.num_classes, info.im_size)
    net.requires_grad_(False)
    common = ["dataset=fashion_mnist", "ipc=10", f"method.batch_real={args.batch_real}"]
    idx = pool.random_per_class(10, make_generator(0, "bench-train")).flatten()
    steps = {
        "embedding": both(embedding_step(pool.get(torch.arange(10 * args.batch_real)), net)),
        "distill, eager": both(our_step("lorentz", [*common, "method.compile_net=false"])),
        "distill, compiled": both(our_step("lorentz", [*common, "method.compile_net=true"])),
        "evaluation step": both(training_steps(pool.get(idx), pool.labels[idx], info, [100])[
            "100/pieces"]),
    }  # fmt: skip
    times = {}
    for name, pair in steps.items():
        times[name] = alternate(pair, args.iterations, 1)
        print(f"{name}: fp32 {med(times[name]['fp32']):.3f} s, bf16 "
              f"{med(times[name]['bf16']):.3f} s", flush=True)  # fmt: skip
    agree = fidelity(pool, info, 10, 64)
    where = machine()
    lines = [
        f"Command: `python -m bench.precision {' '.join(sys.argv[1:] if argv is None else argv)}`"
        "  ",
        f"Fashion-MNIST, IPC 10, batch_real {args.batch_real}, DM+HDD; each pair alternates, "
        f"median of {args.iterations} after 1 warm-up; machine: {where['cpu_model']}, "
        f"{where['threads']} threads, native bf16 convolutions: {where['bf16_native']}.",
        "",
        "| step | float32 | bf16 autocast | float32 / bf16 |",
        "|---|---|---|---|",
    ]
    for name, t in times.items():
        fp32, bf16 = med(t["fp32"]), med(t["bf16"])
        lines.append(f"| {name} | {fp32:.3f} s | {bf16:.3f} s | **{fp32 / bf16:.2f}x** |")
    head = "| loss (IPC 10, 64 real per class, no DSA) | image gradient bf16 vs fp32: cosine |"
    lines += ["", head + " relative error |", "|---|---|---|"]
    for name, a in agree.items():
        lines.append(f"| {name} | {a['cosine']:.5f} | {a['relative_error']:.4f} |")
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.out / "precision.md", text + "\n")
    record = {"args": vars(args) | {"out": str(args.out)}, "seconds": times,
              "gradient_agreement": agree, "machine": where}  # fmt: skip
    atomic_write_text(args.out / "precision.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
