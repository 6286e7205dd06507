"""The on-disk store measured: memory bounded by the step, and speed against the in-memory pool.

``python -m bench.store [--classes 200] [--per-class 1300] [--size 64] [--ranks 1 2]
[--limit-gib 1 2]``

1. Speed (one process, alternating): seconds per DM+HDD iteration on Fashion-MNIST at the
   released script's settings (IPC 10, batch_real 256) with the split in memory and read from
   its store (``dataset.store=true``).
2. Memory: a generated ImageFolder tree (``--classes`` x ``--per-class`` JPEG images at
   ``--size`` px, plus 5 test images per class; written under ``--scratch``, never committed) is
   built into a store (``python -m src.prepare``, timed) and distilled by DM+HDD
   (``dataset=imagefolder``) in a process whose memory a cgroup caps at ``--limit-gib``, far
   below the store's size; its resident memory is sampled every 0.2 s (total, anonymous and
   file-backed: the mapped store's pages are the latter, which the kernel may drop; the store
   is verified and the page cache dropped before each capped run, so its cgroup is charged
   for every page the run reads). With
   ``--ranks 1 2`` it runs once as one process and once as 2 CPU ranks holding half the classes
   each (``trainer=ddp_cpu_classes``), each under its ``--limit-gib`` (the cgroup holds every
   rank); every process's peaks are recorded, and the peak of their sum.

Writes ``bench/results/store.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench import machine
from src.data.store import open_store
from src.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"
CGROUP = Path("/sys/fs/cgroup/memory")  # cgroup v1's memory controller, where writable


def write_class(args: tuple[Path, int, int, int]) -> None:
    """One class folder of smooth random JPEG images (seeded by the class)."""
    from PIL import Image

    folder, c, n, size = args
    rng = np.random.default_rng(c)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR)
        image.save(folder / f"{i:05d}.jpg", quality=90)


def generate(root: Path, classes: int, per_class: int, size: int) -> None:
    """The ImageFolder tree train/<class>/ and val/<class>/ (skipped when complete)."""
    done = root / "complete"
    if done.is_file() and done.read_text() == f"{classes} {per_class} {size}":
        return
    shutil.rmtree(root, ignore_errors=True)
    jobs = [(root / split / f"class{c:04d}", c, n, size)
            for split, n in (("train", per_class), ("val", 5)) for c in range(classes)]  # fmt: skip
    started = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        for k, _ in enumerate(pool.map(write_class, jobs), 1):
            if k % 50 == 0:
                print(f"generated {k}/{len(jobs)} class folders", flush=True)
    done.write_text(f"{classes} {per_class} {size}")
    print(f"generated the tree in {time.perf_counter() - started:.0f} s", flush=True)


def speed(rounds: int, iterations: int, data_dir: str) -> dict[str, list[float]]:
    """Median s/iteration per round of DM+HDD with the pool in memory and from its store."""
    from bench.step_time import time_variant

    base = ["dataset=fashion_mnist", "ipc=10", "method.batch_real=256", "logger=none",
            "geometry.enabled=false", f"paths.data_dir={data_dir}"]  # fmt: skip
    out: dict[str, list[float]] = {"in memory": [], "store": []}
    for _ in range(rounds):
        for name, store in (("in memory", "false"), ("store", "true")):
            _, times = time_variant(
                "dm", "lorentz", iterations, 1, [f"dataset.store={store}"], base
            )
            out[name].append(statistics.median(times))
            print(f"{name}: {out[name][-1]:.3f} s / iteration", flush=True)
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a DDP run's rank processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def sample_memory(pid: int) -> dict[str, int]:
    """Resident memory of a process in KiB: total, anonymous, file-backed."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in fields:
                out[fields[key]] = int(line.split()[1])
    except OSError:
        pass
    return out


def drop_page_cache() -> bool:
    """Empty the page cache, so the capped run reads the store itself and its cgroup is charged
    for the pages (cached ones stay charged to whoever read them first); False if not allowed."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1")
    except OSError:
        return False
    return True


def limited(limit: int) -> Path | None:
    """A cgroup capping memory (and memory + swap) at ``limit`` bytes (None: none can be made)."""
    group = CGROUP / f"hdd_store_bench_{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit))
        memsw = group / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            memsw.write_text(str(limit))
    except OSError:
        return None
    return group


def distill_capped(
    tree: Path, data_dir: Path, size: int, iterations: int, limit: int, extra: list[str]
) -> dict:
    """Distil the generated data set under the memory cap (``extra``: more overrides); peaks of
    its resident memory."""
    argv = [sys.executable, "-m", "src.distill", "dataset=imagefolder", f"dataset.folder={tree}",
            f"dataset.size={size}", f"paths.data_dir={data_dir}", "ipc=1",
            f"iterations={iterations}", "method.batch_real=16", "loss=lorentz",
            "eval.final=false", "eval.random_baseline=false", "logger=none",
            "geometry.enabled=false", "geometry.diagnostics=false",
            f"checkpoint.every={iterations}", f"paths.output_dir={data_dir / 'run'}",
            *extra]  # fmt: skip
    group = limited(limit)
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if group is not None:
        (group / "cgroup.procs").write_text(str(process.pid))
    peaks: dict[int, dict[str, int]] = {}  # per process, in order of appearance
    total = {"rss": 0, "anon": 0, "file": 0}  # peak of the processes' sum
    while process.poll() is None:
        now = {"rss": 0, "anon": 0, "file": 0}
        for pid in process_tree(process.pid):
            for key, value in sample_memory(pid).items():
                peak = peaks.setdefault(pid, {"rss": 0, "anon": 0, "file": 0})
                peak[key] = max(peak[key], value)
                now[key] += value
        total = {k: max(total[k], now[k]) for k in total}
        time.sleep(0.2)
    output = process.stdout.read()
    result = {"returncode": process.returncode, "seconds": time.perf_counter() - started,
              "peak_kib": total, "process_peaks_kib": list(peaks.values()),
              "capped": group is not None, "limit_bytes": limit, "overrides": extra}  # fmt: skip
    if group is not None:
        result["cgroup_peak_bytes"] = int((group / "memory.max_usage_in_bytes").read_text())
        group.rmdir()
    if process.returncode != 0:
        result["tail"] = output[-2000:]
    return result


def memory(args: argparse.Namespace) -> dict:
    """Generate the tree, build its store (timed) and distil it under the memory cap."""
    tree, data = args.scratch / "tree", args.scratch / "data"
    generate(tree, args.classes, args.per_class, args.size)
    store = data / "stores" / f"imagefolder-{args.size}px" / "train"
    out: dict = {"images": args.classes * args.per_class}
    if not (store / "manifest.json").is_file():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "src.prepare", "dataset=imagefolder",
                        f"dataset.folder={tree}", f"dataset.size={args.size}",
                        f"paths.data_dir={data}"], check=True)  # fmt: skip
        out["build_seconds"] = time.perf_counter() - started
    out["store_bytes"] = sum(f.stat().st_size for f in store.iterdir())
    open_store(store)  # its first open hashes every row: done here, not inside the capped runs
    out["capped_runs"] = {}
    for ranks, limit_gib in zip(args.ranks, args.limit_gib, strict=True):
        sharded = ["trainer=ddp_cpu_classes", f"trainer.devices={ranks}"] if ranks > 1 else []
        limit = int(limit_gib * 2**30)
        dropped = drop_page_cache()
        run = distill_capped(tree, data, args.size, args.iterations, limit,
                             [*args.overrides, *sharded])  # fmt: skip
        out["capped_runs"][str(ranks)] = run | {"page_cache_dropped": dropped}
        print(f"{ranks} rank(s): exit {run['returncode']}, peaks {run['process_peaks_kib']}")
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure speed, then memory; write the table and the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--per-class", type=int, default=1300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--ranks",
        type=int,
        nargs="+",
        default=[1, 2],
        help="processes of each capped run (>1: class-sharded CPU ranks)",
    )
    parser.add_argument("--limit-gib", type=float, nargs="+", default=[1.0, 2.0],
                        help="the cgroup's cap of each capped run (one per --ranks)")  # fmt: skip
    parser.add_argument("--iterations", type=int, default=10, help="of the capped distillation")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/hdd_store_bench"))
    parser.add_argument("--parts", nargs="+", default=["speed", "memory"],
                        choices=["speed", "memory"])  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="more overrides of the capped distillation")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    path = RESULTS / "store.json"
    record = json.loads(path.read_text()) if path.is_file() else {}  # the other part's figures
    command = " ".join(["python -m bench.store", *given])
    record |= {f"{part}_command": command for part in args.parts} | {"machine": machine()}
    if "speed" in args.parts:
        record["speed"] = speed(args.rounds, 5, str(args.scratch / "fmnist"))
    if "memory" in args.parts:
        for old in ("capped", "build_seconds"):  # a single-run record, or an earlier build's time
            record.pop(old, None)
        record |= memory(args)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "store.json", json.dumps(record, indent=1) + "\n")
    atomic_write_text(RESULTS / "store.md", table(record) + "\n")
    print(table(record))


def table(record: dict) -> str:
    """The Markdown summary of a record (the parts it holds)."""
    gib = 2**30
    lines = ["### The on-disk store", "", "| measured | value |", "|---|---|"]
    if "speed" in record:
        mem, sto = record["speed"]["in memory"], record["speed"]["store"]
        rounds = " ; ".join(f"{a:.3f} / {b:.3f}" for a, b in zip(mem, sto, strict=True))
        ratio = statistics.median(sto) / statistics.median(mem)
        lines += [
            f"| DM+HDD s/iteration, Fashion-MNIST IPC 10, batch_real 256, in memory / store, "
            f"per round (`{record['speed_command']}`) | {rounds} |",
            f"| store / in memory (median of rounds) | {ratio:.3f}x |",
        ]  # fmt: skip
    if "capped_runs" in record:
        lines.append(
            f"| generated store: images, size on disk (`{record['memory_command']}`) | "
            f"{record['images']}, {record['store_bytes'] / gib:.2f} GiB |"
        )
        build = record.get("build_seconds")
        built = f"{build:.0f} s" if build else "— (built by an earlier invocation)"
        lines.append(f"| store build (decode, resize, write, checksums; 2 workers) | {built} |")
        for ranks, run in record["capped_runs"].items():
            lines += capped_rows(int(ranks), run)
    return "\n".join(lines)


def peak_text(peak: dict[str, int]) -> str:
    """Total / anonymous / file-backed peak in GiB (from KiB)."""
    return " / ".join(f"{peak[k] / 2**20:.2f}" for k in ("rss", "anon", "file"))


def capped_rows(ranks: int, run: dict) -> list[str]:
    """Table rows of one capped distillation: its cap, exit, time and memory peaks."""
    gib, cap = 2**30, "cgroup" if run["capped"] else "NOT capped: no writable cgroup"
    who = "one process" if ranks == 1 else f"{ranks} CPU ranks, each holding its classes"
    rows = [
        f"| distillation, {who} (ImageFolder, IPC 1, batch_real 16, then "
        f"`{' '.join(run.get('overrides', []))}`) under a memory cap of "
        f"{run['limit_bytes'] / gib:.2f} GiB ({cap}"
        f"{', page cache dropped first' if run.get('page_cache_dropped') else ''}) | "
        f"exit {run['returncode']}, "
        f"{run['seconds']:.0f} s |",
        f"| its peak resident memory, all processes: total / anonymous / file-backed (the mapped "
        f"store) | {peak_text(run['peak_kib'])} GiB |",
    ]  # fmt: skip
    if ranks > 1:
        per = " ; ".join(peak_text(p) for p in run["process_peaks_kib"])
        rows.append(f"| each process's peak (launcher = rank 0 first) | {per} GiB |")
    if "cgroup_peak_bytes" in run:
        rows.append(f"| the cgroup's peak charge (page cache included) | "
                    f"{run['cgroup_peak_bytes'] / gib:.2f} GiB |")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
