"""Distilled sets across architectures, with the robust scores: the table the field reports.

``python -m bench.cross_arch_table [--sets NAME=FILE ...] [--models ...] [OVERRIDES...]``

Every set and one random real subset of the same IPC (drawn as a distillation run with
``--seed`` draws its baseline) are trained on ``--num-models`` fresh networks of every
architecture (default: the instance-norm pool, ConvNet, AlexNet, VGG11, ResNet18), with the
sets' DSA and without augmentation, for ``--epochs`` epochs; every set of one architecture
sees the same evaluation seeds. Each (architecture, set, augmentation) cell is written to
the record as it finishes, and a rerun skips the cells it holds, so the hours of the default
on a CPU can be spread over interruptions. Writes
``bench/results/cross_arch_table.{md,json,png}``: one table per set, with the improvement over
random, the augmentation-robust score and (ConvNet, published) the gap to the whole set, and a
plot of every set's accuracy per architecture beside the random real subset's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import matplotlib
from omegaconf import DictConfig

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench import machine  # noqa: E402
from bench.curvature import DM_ROW, run_dir  # noqa: E402
from bench.curvature import OUT as CURVATURE_OUT  # noqa: E402
from src.evaluation.whole_set import whole_set_reference  # noqa: E402
from src.io import atomic_path, atomic_write_text, load_distilled  # noqa: E402
from src.methods.base import initial_synthetic_set  # noqa: E402
from src.pipelines.compare import compose_distill  # noqa: E402
from src.pipelines.components import build_augment, load_data  # noqa: E402
from src.pipelines.cross_arch import cross_table, evaluate_across, scores  # noqa: E402
from src.pipelines.distill import DISTILLED_FILE  # noqa: E402
from src.rng import make_generator  # noqa: E402

NAME = "cross_arch_table"
# The curvature study's IPC-10 seed-0 sets: HDD recommended and its DM twin. (HDD as released,
# f"{RELEASED}, k=1", adds a third of the time again: pass it with --sets.)
DEFAULT_ROWS = {"DM": DM_ROW, "DM+HDD (projection, k 256)": "project, k=256"}
DEFAULT_SETS = [
    f"{name}={run_dir(Path(CURVATURE_OUT), 10, row, 0) / DISTILLED_FILE}"
    for name, row in DEFAULT_ROWS.items()
]
RANDOM = "random_real"
SUFFIXES = ("", "_no_aug")  # cell keys: with the sets' DSA, without augmentation


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=DEFAULT_SETS, metavar="NAME=FILE")
    parser.add_argument("--models", nargs="+", default=["convnet", "alexnet", "vgg11", "resnet18"])
    parser.add_argument("--num-models", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides of the evaluation")
    args = parser.parse_args(argv)
    bad = [s for s in args.sets if "=" not in s]
    if bad:
        parser.error(f"--sets takes NAME=FILE, got {bad}")
    return args


def load_sets(named: list[str]) -> tuple[dict[str, tuple], dict[str, str], str, int]:
    """name -> (images, labels, factor) and name -> SHA-256 of the images, for every file;
    and the data set and IPC they share."""
    sets, digests, kinds = {}, {}, set()
    for entry in named:
        name, path = entry.split("=", 1)
        ds = load_distilled(path)
        kinds.add((ds.meta.get("dataset"), int(ds.meta.get("ipc") or 0)))
        sets[name] = (ds.images, ds.labels, ds.factor)
        digests[name] = hashlib.sha256(ds.images.numpy().tobytes()).hexdigest()
    if len(kinds) != 1:
        raise SystemExit(f"error: the sets differ in data set or IPC: {sorted(kinds)}")
    ((dataset, ipc),) = kinds
    return sets, digests, dataset, ipc


def load_record(path: Path, protocol: dict, digests: dict[str, str]) -> dict:
    """The cells measured so far under this protocol, for these very sets."""
    record = json.loads(path.read_text()) if path.is_file() else {"protocol": protocol}
    if record["protocol"] != protocol:
        raise SystemExit(
            f"error: {path} holds another protocol {record['protocol']}; "
            "move it away to measure this one"
        )
    record.setdefault("cells", {})
    known = record.setdefault("sets", {})
    changed = [n for n, d in digests.items() if known.get(n, d) != d]
    if changed:
        raise SystemExit(f"error: {path} measured other sets under the names {changed}")
    known |= digests
    return record


def eval_config(args: argparse.Namespace, dataset: str) -> DictConfig:
    """The composed evaluation settings of every cell."""
    base = [f"dataset={dataset}", f"eval.models=[{','.join(args.models)}]", "logger=none"]
    base += [f"eval.num_models={args.num_models}", f"eval.epochs={args.epochs}"]
    base += ["eval.robust=true", f"seed={args.seed}", "paths.output_dir=x", *args.overrides]
    return compose_distill(base)


def measure(cfg: DictConfig, sets: dict, ipc: int, record: dict, out) -> None:
    """Evaluate every missing (architecture, set, augmentation) cell, saving after each."""
    info, train = load_data(cfg.dataset, train=True)
    _, test = load_data(cfg.dataset, train=False)
    all_sets = {
        RANDOM: (*initial_synthetic_set(train, ipc, "real", make_generator(cfg.seed, "init")), 1)
    }
    del train

    def save(arch: str, cells: dict) -> None:
        record["cells"][arch] = dict(cells)
        out(record)

    all_sets |= sets
    augment = build_augment(cfg.augment)
    evaluate_across(cfg, info, test, augment, all_sets, done=record["cells"], on_result=save)


def tables(record: dict, names: list[str], data_dir: str) -> str:
    """One cross-architecture table per set, its random real twin beside it."""
    blocks = []
    for name in names:
        per_arch = {}
        for arch, cells in record["cells"].items():
            one = {f"distilled{s}": cells[name + s] for s in SUFFIXES if name + s in cells}
            one |= {f"{RANDOM}{s}": cells[RANDOM + s] for s in SUFFIXES if RANDOM + s in cells}
            whole = whole_set_reference(data_dir, record["protocol"]["dataset"], cells["model"])
            per_arch[arch] = one | scores(one, whole)
        blocks.append(cross_table(per_arch, f"**{name}**"))
    return "\n\n".join(blocks)


def plot(record: dict, names: list[str], path: Path, title: str) -> Path:
    """Accuracy (mean ± std) per architecture of the random real subset and every set, with the
    sets' DSA and without augmentation side by side (written atomically)."""
    archs, keys = list(record["cells"]), [RANDOM, *names]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    step = 0.6 / max(len(keys) - 1, 1)
    for ax, suffix, label in zip(axes, SUFFIXES, ("with the sets' DSA", "without augmentation"),
                                 strict=True):  # fmt: skip
        for i, key in enumerate(keys):
            found = [(j, record["cells"][a].get(key + suffix)) for j, a in enumerate(archs)]
            found = [(j + (i - (len(keys) - 1) / 2) * step, c) for j, c in found if c]
            if found:
                xs, cells = zip(*found, strict=True)
                ax.errorbar(xs, [c["mean"] for c in cells], yerr=[c["std"] for c in cells],
                            fmt="o", capsize=3, color=f"C{i}",
                            label="random real" if key == RANDOM else key)  # fmt: skip
        ax.set_xticks(range(len(archs)), archs)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """Measure the missing cells, then write the tables and the record."""
    args = parse_args(argv)
    sets, digests, dataset, ipc = load_sets(args.sets)
    protocol = {"dataset": dataset, "ipc": ipc, "models": args.models, "seed": args.seed,
                "num_models": args.num_models, "epochs": args.epochs,
                "overrides": args.overrides}  # fmt: skip
    path = args.results / f"{NAME}.json"
    record = load_record(path, protocol, digests)
    command = "python -m bench.cross_arch_table " + " ".join(sys.argv[1:] if argv is None else argv)
    title = (f"{dataset} IPC {ipc}, {args.num_models} networks x {args.epochs} epochs per "
             f"cell, evaluation seed {args.seed}")  # fmt: skip

    cfg = eval_config(args, dataset)

    def write(record: dict) -> str:
        """The record and its tables so far (after every cell: a stop keeps what was measured)."""
        record |= {"command": command.strip(), "machine": machine()}
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
        text = f"### {title}\n\n`{command.strip()}`\n\n" + tables(
            record, list(sets), cfg.paths.data_dir
        )
        atomic_write_text(args.results / f"{NAME}.md", text + "\n")
        plot(record, list(sets), args.results / f"{NAME}.png", title)
        return text

    measure(cfg, sets, ipc, record, write)
    print(write(record))


if __name__ == "__main__":
    main()
