"""Seconds per DM-HDD iteration: the authors' released script against ours, whole processes.

``python -m bench.released --released PATH [--iterations 5 25] [--rounds 2]``

PATH is a checkout (or bare git directory) of the released code (github.com/Guang000/HDD).
Its ``DM-HDD/main_DM.py`` runs as a user would run it, at its own settings (ConvNet,
batch_real 256, lr 1, DSA, the capped expmap lift, k 1, scale 20) on Fashion-MNIST IPC 10,
with evaluation off (``--eval_mode X --num_eval 0``). Each command runs at two iteration
counts; ``(T(n2) - T(n1)) / (n2 - n1)`` removes start-up and data loading. The commands
alternate within each round (A B C ... A B C ...), so all see the same machine, after one
uncounted run of each (without it the first compiled run alone pays for compilation, which
torch's cache spares every later one).

The released code is copied into a scratch directory with two changes a user has to make
to run it today, neither of which changes its arithmetic: its bundled geoopt moves to the
``lib/`` package its imports name, and ``embed``'s ``out.view(...)`` becomes
``out.reshape(...)`` (torch 2.14's grid_sample output is not contiguous, so the view
raises). Fashion-MNIST's files are copied into torchvision's layout, so nothing downloads.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import machine
from src.compute.precision import cpu_bf16_native
from src.io import atomic_write_text

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
OURS = [
    "dataset=fashion_mnist", "ipc=10", "method=dm", "loss=lorentz", "method.batch_real=256",
    "eval.final=false", "eval.random_baseline=false", "geometry.enabled=false",
    "geometry.diagnostics=false", "logger=none", "checkpoint.every=1000000",
    "grid_every=1000000",
]  # fmt: skip


def prepare_released(source: Path, scratch: Path, data: Path = FASHION_MNIST) -> Path:
    """A runnable copy of the released DM-HDD directory in ``scratch``, with the
    Fashion-MNIST files of ``data`` where torchvision looks; returns its path."""
    if (source / "DM-HDD").is_dir():
        shutil.copytree(source / "DM-HDD", scratch / "DM-HDD")
    else:  # a bare git directory, as a mirror holds it
        archive = subprocess.run(
            ["git", "--git-dir", str(source), "archive", "HEAD", "DM-HDD"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    root = scratch / "DM-HDD"
    (root / "lib").mkdir()
    shutil.move(root / "geoopt", root / "lib" / "geoopt")
    networks = root / "networks.py"
    networks.write_text(
        networks.read_text().replace("out.view(out.size(0), -1)", "out.reshape(out.size(0), -1)")
    )
    raw = root / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for packed in data.glob("*.gz"):
        shutil.copy(packed, raw / packed.name)
        with gzip.open(packed) as f:
            (raw / packed.stem).write_bytes(f.read())
    return root


def commands(released: Path, scratch: Path, variants: list[str]) -> dict[str, list[str]]:
    """Each variant's command line, with ``{n}`` where its iteration count goes."""
    cmds = {
        "released": [
            sys.executable, str(released / "main_DM.py"), "--dataset", "FashionMNIST",
            "--ipc", "10", "--batch_real", "256", "--Iteration", "{n}", "--eval_mode", "X",
            "--num_eval", "0", "--num_exp", "1", "--data_path", str(released / "data"),
            "--save_path", str(scratch / "released_out"),
        ],
    }  # fmt: skip
    for name in variants:
        compiled, precision = name.split("/")
        cmds[f"ours/{name}"] = [
            sys.executable, "-m", "src.distill", *OURS, "iterations={n}",
            f"method.compile_net={'true' if compiled == 'compiled' else 'false'}",
            f"trainer={'cpu_bf16' if precision == 'bf16' else 'cpu'}",
            f"hydra.run.dir={scratch / 'ours' / name}",
        ]  # fmt: skip
    return cmds


def run_seconds(cmd: list[str], n: int, cwd: Path, log: Path) -> float:
    """Wall seconds of one whole process at ``n`` iterations (its output appended to ``log``)."""
    argv = [part.replace("{n}", str(n)) for part in cmd]
    start = time.perf_counter()
    with log.open("a") as out:
        subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def measure(
    cmds: dict[str, list[str]], released: Path, iterations: tuple[int, int], rounds: int, log: Path
) -> dict[str, dict[str, list[float]]]:
    """Whole-process seconds of every command at both iteration counts, alternating."""  # fmt: skip
    repo = Path(__file__).resolve().parent.parent
    for name, cmd in cmds.items():  # warm-up: torch.compile's cache, the page cache
        cwd = released if name == "released" else repo
        print(f"warm-up: {name}: {run_seconds(cmd, iterations[0], cwd, log):.1f} s", flush=True)
    times = {name: {str(n): [] for n in iterations} for name in cmds}
    for r in range(rounds):
        for n in iterations:
            for name, cmd in cmds.items():
                cwd = released if name == "released" else repo
                seconds = run_seconds(cmd, n, cwd, log)
                times[name][str(n)].append(seconds)
                print(f"round {r + 1}/{rounds}: {name} at {n} iterations: {seconds:.1f} s",
                      flush=True)  # fmt: skip
    return times


def per_iteration(times: dict[str, list[float]], iterations: tuple[int, int]) -> list[float]:
    """Seconds per iteration of each round: (T(n2) - T(n1)) / (n2 - n1)."""
    n1, n2 = iterations
    return [(b - a) / (n2 - n1) for a, b in zip(times[str(n1)], times[str(n2)], strict=True)]


def table(rates: dict[str, list[float]], args: argparse.Namespace, skipped: str) -> str:
    """The Markdown table: seconds per iteration and the released script's time over ours."""
    n1, n2 = args.iterations
    base = statistics.median(rates["released"])
    where = machine()
    lines = [
        f"Command: `python -m bench.released --released PATH --iterations {n1} {n2} "
        f"--rounds {args.rounds}`  ",
        f"Fashion-MNIST IPC 10, batch_real 256, DM+HDD as released; (T({n2}) - T({n1})) / "
        f"{n2 - n1} per whole process, commands alternating, median of {args.rounds} rounds; "
        f"machine: {where['cpu_model'] or where['processor']}, {where['threads']} threads.",
        "",
        "| command | s / iteration (each round) | released / this |",
        "|---|---|---|",
    ]
    for name, values in rates.items():
        med = statistics.median(values)
        each = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {med:.3f} ({each}) | **{base / med:.2f}x** |")
    if skipped:
        lines += ["", skipped]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Prepare the released script, time every command and write the table and raw times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--released", type=Path, required=True)
    parser.add_argument("--iterations", type=int, nargs=2, default=(5, 25))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    args.iterations = tuple(args.iterations)
    variants = ["eager/fp32", "compiled/fp32"]
    skipped = ""
    if cpu_bf16_native():
        variants += ["eager/bf16", "compiled/bf16"]
    else:
        skipped = ("No bf16 rows: this CPU has no native bfloat16 convolution (oneDNN reports "
                   "none), where `trainer=cpu_bf16` runs slower than float32 "
                   "(bench/results/precision.md).")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="released-") as tmp:
        scratch = Path(tmp)
        released = prepare_released(args.released, scratch)
        cmds = commands(released, scratch, variants)
        raw = measure(cmds, released, args.iterations, args.rounds, scratch / "runs.log")
    rates = {name: per_iteration(t, args.iterations) for name, t in raw.items()}
    text = table(rates, args, skipped)
    print(text)
    atomic_write_text(args.out / "released.md", text + "\n")
    record = {"args": {"iterations": list(args.iterations), "rounds": args.rounds},
              "seconds": raw, "per_iteration": rates, "machine": machine()}  # fmt: skip
    atomic_write_text(args.out / "released.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
