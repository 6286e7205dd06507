"""Pruning benchmark on Fashion-MNIST: DM+HDD, IPC 10, kept ratio and criterion vs accuracy.

``python -m bench.pruning [--seeds 0 1 2] [--iterations 100] [--eval-models 1]``

Rows: no pruning (ratio 1.0), hyperbolic centroid pruning at 0.5 / 0.2 / 0.1, and the
controls random and euclidean at 0.2. Each (row, seed) is one distillation of
``--iterations`` iterations (batch_real 64) evaluated by ``--eval-models`` networks x 300
epochs; a cell is the mean ± std over seeds of the run's mean accuracy, so the std is the
seed-to-seed spread the stability claim is about. Runs already finished under ``--out``
are reused, so an interrupted benchmark continues where it stopped. The table is
rewritten after every run into ``bench/results/fashion_mnist_ipc10_pruning.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench import machine  # noqa: E402
from src.io import atomic_path, atomic_write_text  # noqa: E402
from src.pipelines.compare import compose_distill  # noqa: E402
from src.pipelines.distill import finished_results, run_distill  # noqa: E402
from src.pruning import FeatureCache  # noqa: E402

NAME = "fashion_mnist_ipc10_pruning"
ROWS = {
    # Scoring order matters for speed only: hyperbolic and euclidean rows of a seed share
    # one embedding of the pool (the features are remembered within the process).
    "hyperbolic 0.2": ["prune=hyperbolic", "prune.keep_ratio=0.2"],
    "euclidean 0.2": ["prune=euclidean", "prune.keep_ratio=0.2"],
    "random 0.2": ["prune=random", "prune.keep_ratio=0.2"],
    "none (1.0)": ["prune=none"],
    "hyperbolic 0.5": ["prune=hyperbolic", "prune.keep_ratio=0.5"],
    "hyperbolic 0.1": ["prune=hyperbolic", "prune.keep_ratio=0.1"],
}


# The rows in table order, each with its (criterion, kept ratio) for the plot ("none" is
# every criterion at ratio 1).
RATIOS = {
    "none (1.0)": ("none", 1.0),
    "hyperbolic 0.5": ("hyperbolic", 0.5),
    "hyperbolic 0.2": ("hyperbolic", 0.2),
    "hyperbolic 0.1": ("hyperbolic", 0.1),
    "random 0.2": ("random", 0.2),
    "euclidean 0.2": ("euclidean", 0.2),
}


def seed_accuracies(done: dict[int, dict]) -> tuple[list[float], float, float]:
    """Per-seed mean accuracies of one row, their mean and their sample std."""
    means = [done[s]["distilled"]["mean"] for s in sorted(done)]
    std = statistics.stdev(means) if len(means) > 1 else 0.0
    return means, statistics.fmean(means), std


def run_dir(out: Path, row: str, seed: int) -> Path:
    """Where one (row, seed) run writes."""
    return out / "runs" / f"{row.replace(' ', '_').replace('(', '').replace(')', '')}_seed{seed}"


def table(runs: dict[str, dict[int, dict]], header: str) -> str:
    """The Markdown table: mean ± sample std over seeds of each run's mean accuracy."""
    # No time column: runs of one table may have shared the CPU with other work.
    lines = [
        header,
        "",
        "| pruning | kept per class | accuracy (%), mean ± std over seeds | per seed | seeds |",
        "|---|---|---|---|---|",
    ]
    for row in RATIOS:
        done = runs.get(row, {})
        if not done:
            lines.append(f"| {row} | — | not run | — | 0 |")
            continue
        means, mean, std = seed_accuracies(done)
        kept = done[min(done)].get("kept_per_class")
        kept_text = "all" if kept is None else f"{min(kept)}–{max(kept)}"
        per_seed = " / ".join(f"{m:.2f}" for m in means)
        cell = f"{mean:.2f} ± {std:.2f}"
        lines.append(f"| {row} | {kept_text} | {cell} | {per_seed} | {len(means)} |")
    return "\n".join(lines)


def plot(runs: dict[str, dict[int, dict]], path: Path) -> Path:
    """Accuracy against kept ratio: mean ± std per row, each seed a dot (written atomically)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    # colour, legend label and a small x offset so the three 0.2 rows do not overlap
    styles = {
        "hyperbolic": ("C0", "hyperbolic (centroid)", 1.0),
        "random": ("C1", "random", 0.93),
        "euclidean": ("C2", "euclidean (class mean)", 1.07),
        "none": ("k", "none", 1.0),
    }
    labelled: set[str] = set()
    curve: list[tuple[float, float]] = []
    for row, (criterion, ratio) in RATIOS.items():
        done = runs.get(row, {})
        if not done:
            continue
        means, mean, std = seed_accuracies(done)
        color, label, shift = styles[criterion]
        x = ratio * shift
        label = None if label in labelled else label
        labelled.add(styles[criterion][1])
        ax.errorbar([x], [mean], yerr=[std], fmt="o", color=color, capsize=4, label=label)
        ax.scatter([x] * len(means), means, s=8, color=color, alpha=0.5)
        if criterion in ("hyperbolic", "none"):
            curve.append((ratio, mean))
    if len(curve) > 1:
        curve.sort()
        ax.plot(*zip(*curve, strict=True), color=styles["hyperbolic"][0], lw=1)
    ax.set_xscale("log")
    ax.set_xticks([0.1, 0.2, 0.5, 1.0], labels=["0.1", "0.2", "0.5", "1.0"])
    ax.set_xlabel("kept ratio of the real pool")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Fashion-MNIST IPC 10, DM+HDD: pruning the real pool", fontsize=9)
    ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """Distill and evaluate every (row, seed) not yet done; rewrite the table after each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--eval-models", type=int, default=1)
    parser.add_argument("--out", default=f"outputs/bench/{NAME}")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    out, results = Path(args.out), Path(args.results)
    base = [
        "experiment=fashion_mnist_bench",
        "loss=lorentz",
        f"iterations={args.iterations}",
        f"eval.num_models={args.eval_models}",
        "eval.random_baseline=false",
        "logger=none",
        *args.overrides,
    ]
    command = (
        f"python -m bench.pruning --seeds {' '.join(map(str, args.seeds))} "
        f"--iterations {args.iterations} --eval-models {args.eval_models}"
        + "".join(f" {o}" for o in args.overrides)
    )
    header = (
        f"### Fashion-MNIST IPC 10, DM+HDD, {args.iterations} iterations, batch_real 64, "
        f"{args.eval_models} evaluation network(s) x 300 epochs per run; std: sample standard "
        f"deviation of the per-seed accuracies\n\n`{command}`"
    )
    runs: dict[str, dict[int, dict]] = {row: {} for row in ROWS}
    features = FeatureCache()  # the rows of one seed score the same pool
    started = time.perf_counter()
    for seed in args.seeds:
        for row, overrides in ROWS.items():
            directory = run_dir(out, row, seed)
            cfg = compose_distill(
                [*base, *overrides, f"seed={seed}", f"paths.output_dir={directory}"]
            )
            done = finished_results(cfg)  # a run of another budget here is an error
            runs[row][seed] = done if done is not None else run_distill(cfg, features)
            text = table(runs, header)
            summary = {
                "command": command,
                "base_overrides": base,
                "rows": {r: {str(s): v for s, v in d.items()} for r, d in runs.items()},
                "seconds_this_invocation": time.perf_counter() - started,
                "machine": machine(),
            }
            results.mkdir(parents=True, exist_ok=True)
            atomic_write_text(results / f"{NAME}.md", text + "\n")
            atomic_write_text(results / f"{NAME}.json", json.dumps(summary, indent=2) + "\n")
            plot(runs, results / f"{NAME}.png")
    print(table(runs, header), file=sys.stderr)


if __name__ == "__main__":
    main()
