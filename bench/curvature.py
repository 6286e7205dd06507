"""Curvature and lift study on Fashion-MNIST: DM+HDD accuracy against k for each lift, and DM.

``python -m bench.curvature [--ipcs 1 10] [--seeds 0 1 2]``

Rows: DM (``loss=euclidean``), DM with HDD's unsquared scaled distance
(``loss=euclidean_unsquared``, HDD's limit as k grows: the control for the curvature's share
of a gain) and DM+HDD with three lifts, the released capped exponential map (cap 10
sqrt(k)), the exact exponential map and the projection ``(sqrt(k + |v|^2), v)``, at IPC 1
for k in 1, 4, 16, 64, 256, 1024 and at IPC 10 for k in 1, 16, 256 plus each lift's best
IPC-1 k (as recorded when the invocation starts), scale 20. Every run uses the reduced
protocol of ``experiment=fashion_mnist_bench`` (200 iterations, batch_real 64, 3 evaluation
networks x 300 epochs). A cell is the mean ± sample std over seeds of each run's mean
accuracy, with the run's geometry diagnostics at its end (class means, then averaged over
seeds).

Resumable per run: a run finished under ``--out`` is reused, an interrupted one continues
from its checkpoint, and so is one already recorded in ``bench/results/curvature.json`` with
the same overrides (the committed record survives a fresh clone). The table, JSON and plot
are rewritten after every run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench import machine  # noqa: E402
from src.io import atomic_path, atomic_write_text, load_distilled  # noqa: E402
from src.pipelines.compare import compose_distill  # noqa: E402
from src.pipelines.components import load_data  # noqa: E402
from src.pipelines.diagnostics import geometry_probe  # noqa: E402
from src.pipelines.distill import DISTILLED_FILE, finished_results, run_distill  # noqa: E402

NAME = "curvature"
OUT = f"outputs/bench/{NAME}"  # the runs' directories (run_dir)
RELEASED = "expmap, cap 10 (released)"
EXACT = "expmap, exact"
K_GRID = {1: [1, 4, 16, 64, 256, 1024], 10: [1, 16, 256]}
LIFTS = {
    RELEASED: ["loss.lift=expmap", "loss.max_radius=10"],
    EXACT: ["loss.lift=expmap", "loss.max_radius=null"],
    "project": ["loss.lift=project", "loss.max_radius=null"],
}
DM_ROW = "DM (euclidean)"
CONTROL_ROW = "DM, unsquared distance x 20"  # HDD's limit as k grows
# End-of-run geometry diagnostics shown in the table (class means), in this order.
DIAGNOSTICS = {
    "real_level_mean": "real level",
    "real_centroid_level": "real centroid level",
    "syn_centroid_level": "syn centroid level",
    "centroid_distance": "centroid distance",
    "ess_fraction": "ESS / n",
    "share_level_spearman": "rank corr. share-level",
}


def rows_for(
    ipc: int, extra_k: dict[str, list[float]] | None = None
) -> dict[str, tuple[str, float | None, list[str]]]:
    """Row label -> (lift label, k, overrides) for one IPC, DM first; ``extra_k``: k per lift."""
    rows = {DM_ROW: ("DM", None, ["loss=euclidean", "eval.random_baseline=true"])}
    rows[CONTROL_ROW] = ("DM unsquared", None, ["loss=euclidean_unsquared"])
    for lift, overrides in LIFTS.items():
        for k in sorted(set(K_GRID[ipc]) | set((extra_k or {}).get(lift, []))):
            rows[f"{lift}, k={k:g}"] = (lift, k, ["loss=lorentz", *overrides, f"loss.k={k}"])
    return rows


def best_k(record: dict, ipc: int) -> dict[str, list[float]]:
    """Each lift's k with the highest seed-mean accuracy at ``ipc`` in the record."""
    best: dict[str, tuple[float, float]] = {}
    for (lift, k, _), runs in (
        (spec, record["ipcs"].get(str(ipc), {}).get(row, {})) for row, spec in rows_for(ipc).items()
    ):
        if k is None or not runs:
            continue
        mean = statistics.fmean(r["distilled"]["mean"] for r in runs.values())
        if lift not in best or mean > best[lift][1]:
            best[lift] = (k, mean)
    return {lift: [k] for lift, (k, _) in best.items()}


def schedule(
    ipcs: list[int],
    seeds: list[int],
    rows: dict,
    last: set[tuple[int, str]] = frozenset(),
    promising: set[str] = frozenset(),
    ahead: set[str] = frozenset(),
) -> list[tuple[int, str, int]]:
    """Run order: per IPC, DM and the released setting seed by seed (a paired comparison
    after each pair), then the other rows on the first seed (the shape of each curve
    early), then the other seeds. Within each of these phases the ``promising`` rows run
    first; the (IPC, row) pairs in ``last`` go to the end; the rows named in ``ahead``
    (a user's choice, e.g. the candidates for the recommendation) move ahead of all."""
    first = [DM_ROW, f"{RELEASED}, k=1"]

    def rest(ipc: int) -> list[str]:
        others = [r for r in rows[str(ipc)] if r not in first]
        return sorted(others, key=lambda r: r not in promising)  # stable: grid order kept

    jobs = []
    for ipc in ipcs:
        jobs += [(ipc, row, seed) for seed in seeds for row in first]
        jobs += [(ipc, row, seeds[0]) for row in rest(ipc)]
    for seed in seeds[1:]:
        phase = [(ipc, row, seed) for ipc in ipcs for row in rest(ipc)]
        jobs += sorted(phase, key=lambda job: job[1] not in promising)
    jobs = [j for j in jobs if j[:2] not in last] + [j for j in jobs if j[:2] in last]
    return sorted(jobs, key=lambda job: job[1] not in ahead)  # stable


def promising_rows(record: dict) -> set[str]:
    """Rows (by lift and k) whose IPC-1 accuracy is within two DM spreads of DM's: only they
    can meet the IPC-1 half of the recommendation's target, so their IPC-10 cells decide."""
    ipc1 = record.get("ipcs", {}).get("1", {})
    dm = [r["distilled"]["mean"] for r in ipc1.get(DM_ROW, {}).values()]
    if len(dm) < 2:
        return set()
    mean, std = seed_stats(dm)
    return {
        row
        for row, runs in ipc1.items()
        if row != DM_ROW
        and runs
        and statistics.fmean(r["distilled"]["mean"] for r in runs.values()) >= mean - 2 * std
    }


def predicted_twins(record: dict, rows: dict) -> set[tuple[int, str]]:
    """Exact-expmap rows expected to repeat the capped ones: those whose k distilled bitwise
    the capped set at IPC 1 (the cap never reached), at every IPC where the capped row runs
    too. They run last."""
    ipc1 = record.get("ipcs", {}).get("1", {})
    return {
        (int(ipc), row)
        for ipc, names in rows.items()
        for row in names
        if row.startswith(f"{EXACT}, k=")
        and row.replace(EXACT, RELEASED, 1) in names
        and same_set_as_capped(ipc1, row)
    }


def run_dir(out: Path, ipc: int, row: str, seed: int) -> Path:
    """Where one (IPC, row, seed) run writes."""
    # No "=" in the name: the directory travels as a Hydra override value.
    slug = "".join(ch if ch.isalnum() or ch == "." else "_" for ch in row).strip("_")
    return out / "runs" / f"ipc{ipc}" / f"{slug}_seed{seed}"


def seed_stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def diagnostics_of(result: dict) -> dict[str, float] | None:
    """The class-mean end-of-run diagnostics of a run's results (None if it has none)."""
    geometry = result.get("geometry")
    if not geometry:
        return None
    return geometry["end"]["mean"]


def cell(runs: dict[int, dict]) -> tuple[str, str, list[str]]:
    """Accuracy cell, per-seed text and diagnostic cells of one row."""
    if not runs:
        return "not run", "—", ["—"] * len(DIAGNOSTICS)
    means = [runs[s]["distilled"]["mean"] for s in sorted(runs)]
    mean, std = seed_stats(means)
    diags = [d for d in (diagnostics_of(runs[s]) for s in sorted(runs)) if d]
    texts = []
    for key in DIAGNOSTICS:
        values = [d[key] for d in diags if d.get(key) is not None and math.isfinite(d[key])]
        texts.append(f"{statistics.fmean(values):.3g}" if values else "—")
    return f"{mean:.2f} ± {std:.2f}", " / ".join(f"{m:.2f}" for m in means), texts


def table(record: dict, header: str) -> str:
    """The Markdown tables, one per IPC."""
    lines = [header, ""]
    for ipc, rows in record["ipcs"].items():
        random_real = [
            r["random_real"]["mean"] for r in rows.get(DM_ROW, {}).values() if "random_real" in r
        ]
        lines.append(f"#### IPC {ipc}")
        if random_real:
            mean, std = seed_stats(random_real)
            lines.append(f"\nRandom real subset (the init set): {mean:.2f} ± {std:.2f}.")
        lines += [
            "",
            "| setting | accuracy (%), mean ± std over seeds | per seed | "
            + " | ".join(DIAGNOSTICS.values())
            + " |",
            "|---|---|---|" + "---|" * len(DIAGNOSTICS),
        ]
        order = [
            *record["rows"].get(ipc, {}),
            *(r for r in rows if r not in record["rows"].get(ipc, {})),
        ]
        for row in order:
            runs = rows.get(row, {})
            acc, per_seed, diags = cell({int(s): r for s, r in runs.items()})
            twin = same_set_as_capped(rows, row)
            label = f"{row} (= capped: bitwise the same sets)" if twin else row
            lines.append(f"| {label} | {acc} | {per_seed} | " + " | ".join(diags) + " |")
        lines.append("")
    return "\n".join(lines)


def same_set_as_capped(rows: dict, row: str) -> bool:
    """Whether an exact-expmap row distilled bitwise the capped row's sets on every seed.

    That happens when no feature ever reaches the cap (10 sqrt(k) above every norm).
    """
    exact = f"{EXACT}, k="
    if not row.startswith(exact):
        return False
    mine, capped = rows.get(row, {}), rows.get(row.replace(EXACT, RELEASED, 1), {})
    common = [s for s in mine if s in capped]
    hashes = [(mine[s].get("set_sha256"), capped[s].get("set_sha256")) for s in common]
    return bool(hashes) and all(a is not None and a == b for a, b in hashes)


def plot(record: dict, path: Path) -> Path:
    """Accuracy against k (log axis), one line per lift, DM as a band; one panel per IPC."""
    ipcs = list(record["ipcs"])
    fig, axes = plt.subplots(1, len(ipcs), figsize=(5.2 * len(ipcs), 3.8), squeeze=False)
    for ax, ipc in zip(axes[0], ipcs, strict=True):
        rows = record["ipcs"][ipc]
        spec = record["rows"][ipc]
        dm = [r["distilled"]["mean"] for r in rows.get(DM_ROW, {}).values()]
        if dm:
            mean, std = seed_stats(dm)
            ax.axhspan(mean - std, mean + std, color="gray", alpha=0.25, lw=0)
            ax.axhline(mean, color="gray", lw=1, label=f"DM {mean:.1f}")
        control = [r["distilled"]["mean"] for r in rows.get(CONTROL_ROW, {}).values()]
        if control:
            mean = statistics.fmean(control)
            ax.axhline(mean, color="black", ls="--", lw=1, label=f"DM unsquared {mean:.1f}")
        for i, lift in enumerate(LIFTS):
            points = []
            for row, (row_lift, k, _) in spec.items():
                runs = rows.get(row, {})
                if row_lift != lift or not runs:
                    continue
                m, s = seed_stats([r["distilled"]["mean"] for r in runs.values()])
                points.append((k, m, s))
            if points:
                points.sort()
                ks, ms, ss = zip(*points, strict=True)
                ax.errorbar(ks, ms, yerr=ss, fmt="-o", color=f"C{i}", capsize=3, label=lift)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("Lorentz parameter k (curvature -1/k)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"Fashion-MNIST IPC {ipc}, DM+HDD (scale 20)", fontsize=9)
        ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def load_record(path: Path) -> dict:
    """The committed record of finished runs (empty when there is none)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def recorded(record: dict, ipc: int, row: str, seed: int, overrides: list[str]) -> dict | None:
    """A run of the committed record with exactly these overrides, if any."""
    run = record.get("ipcs", {}).get(str(ipc), {}).get(row, {}).get(str(seed))
    return run if run is not None and run.get("overrides") == overrides else None


def main(argv: list[str] | None = None) -> None:
    """Distill and evaluate every (IPC, row, seed) not yet done; rewrite the outputs after each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ipcs", nargs="+", type=int, default=[1, 10], choices=sorted(K_GRID))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--first", nargs="+", default=[], metavar="ROW", help="rows to run first")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    out, results = Path(args.out), Path(args.results)
    previous = load_record(results / f"{NAME}.json")
    base = ["experiment=fashion_mnist_bench", "logger=none", "geometry.enabled=false"]
    base += ["eval.random_baseline=false"]
    command = "python -m bench.curvature"
    header = (
        "### Fashion-MNIST, DM vs DM+HDD by lift and k: 200 iterations, batch_real 64, 3 "
        "evaluation networks x 300 epochs per run, scale 20; std: sample std of the per-seed "
        "accuracies; diagnostics: class means at the end of each run, averaged over seeds "
        f"(README, 'Geometry diagnostics')\n\n`{command}`"
    )
    # Keep every IPC of the committed record, so running one half does not drop the other.
    record = {"ipcs": previous.get("ipcs", {}), "rows": {}}
    # IPC 10 also runs each lift's best IPC-1 k, as recorded when this invocation starts.
    extra = {10: best_k(previous, 1)} if previous else {}
    record["extra_k"] = {str(i): e for i, e in extra.items()}
    for ipc in sorted({*args.ipcs, *map(int, record["ipcs"])}):
        record["rows"][str(ipc)] = rows_for(ipc, extra.get(ipc))
        record["ipcs"].setdefault(str(ipc), {})
    started = time.perf_counter()
    last = predicted_twins(previous, record["rows"])
    promising = promising_rows(previous)
    unknown = set(args.first) - {row for rows in record["rows"].values() for row in rows}
    if unknown:
        parser.error(f"--first: no such row {sorted(unknown)}")
    jobs = schedule(args.ipcs, args.seeds, record["rows"], last, promising, set(args.first))
    for ipc, row, seed in jobs:
        overrides = [*base, f"ipc={ipc}", *record["rows"][str(ipc)][row][2], f"seed={seed}"]
        done = recorded(previous, ipc, row, seed, overrides)
        directory = run_dir(out, ipc, row, seed)
        # resume=auto: a run interrupted mid-way continues from its checkpoint (not recorded in
        # ``overrides``, which identify the run).
        cfg = compose_distill([*overrides, f"paths.output_dir={directory}", "resume=auto"])
        if done is None:
            done = finished_results(cfg) or run_distill(cfg)
            done = done | {"overrides": overrides}
        if (directory / DISTILLED_FILE).is_file():
            if diagnostics_of(done) is None:
                done = done | {"geometry": measure_saved_set(cfg, directory)}
            if "set_sha256" not in done:
                images = load_distilled(directory / DISTILLED_FILE).images
                done = done | {"set_sha256": hashlib.sha256(images.numpy().tobytes()).hexdigest()}
        record["ipcs"][str(ipc)].setdefault(row, {})[str(seed)] = done
        write_outputs(record, results, header, command, started)
    print(table(record, header), file=sys.stderr)


def measure_saved_set(cfg, directory: Path) -> dict:
    """End-of-run diagnostics of a saved set, for a run finished before runs recorded them.

    The probe (network, real sample) is the one the run itself would have used at its end.
    """
    saved = load_distilled(directory / DISTILLED_FILE)
    probe = geometry_probe(cfg, *load_data(cfg.dataset, train=True), saved.factor)
    end = probe.measure(saved.images, saved.labels)
    return {"lift": probe.lift, "end": end | {"iteration": saved.meta.get("iteration")}}


def write_outputs(record: dict, results: Path, header: str, command: str, started: float) -> None:
    """Rewrite curvature.{md,json,png} from the record (atomically)."""
    summary = record | {
        "command": command,
        "seconds_this_invocation": time.perf_counter() - started,
        "machine": machine(),
    }
    results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(results / f"{NAME}.md", table(record, header) + "\n")
    atomic_write_text(results / f"{NAME}.json", json.dumps(summary, indent=2) + "\n")
    plot(record, results / f"{NAME}.png")


if __name__ == "__main__":
    main()
