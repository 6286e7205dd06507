"""Random real vs DM vs DM+HDD (or any methods) side by side, on the same seeds."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from src.compute.precision import cpu_bf16_native
from src.pipelines.distill import finished_results, run_distill
from src.pruning import FeatureCache

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def compose_distill(overrides: list[str]) -> object:
    """Compose ``conf/distill.yaml`` with overrides, outside a Hydra app."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("distill", overrides=overrides)


def _pooled(runs: list[dict], key: str) -> list[float]:
    return [a for r in runs if key in r for a in r[key]["accuracies"]]


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {std:.2f}"


def run_compare(
    overrides: list[str],
    losses: list[str],
    seeds: list[int],
    out_dir: Path,
    method: str | None = None,
    resume: bool = False,
) -> dict:
    """Distill once per (loss, seed) and evaluate every set with the same evaluation seeds.

    With ``resume`` finished runs under ``out_dir`` are read back and unfinished ones
    continue from their checkpoints, so a long comparison survives interruptions.
    """
    started = time.perf_counter()
    runs = distill_each(overrides, losses, seeds, out_dir, method, resume)
    title, rows = compare_rows(runs, losses, seeds)
    summary = {
        "title": title,
        "overrides": overrides,
        "losses": losses,
        "seeds": seeds,
        "rows": {name: {"accuracies": accs} for name, accs, _ in rows},
        "runs": runs,
        "seconds": time.perf_counter() - started,
        "machine": machine(),
    }
    return {"table": compare_table(title, rows), "summary": summary}


def distill_each(
    overrides: list[str],
    losses: list[str],
    seeds: list[int],
    out_dir: Path,
    method: str | None,
    resume: bool,
) -> dict[str, list[dict]]:
    """The results of every (loss, seed) run, by loss in seed order (``run_compare``)."""
    runs: dict[str, list[dict]] = {loss: [] for loss in losses}
    features = FeatureCache()  # with pruning, the losses of one seed prune the same pool
    for seed in seeds:
        for i, loss in enumerate(losses):
            run_dir = out_dir / "runs" / f"{method or 'method'}_{loss}_seed{seed}"
            cfg = compose_distill(
                [
                    *overrides,
                    *([f"method={method}"] if method else []),
                    f"loss={loss}",
                    f"seed={seed}",
                    f"paths.output_dir={run_dir}",
                    *(["resume=auto"] if resume else []),
                    # The random-real baseline is the shared init set: evaluate it once per seed.
                    f"eval.random_baseline={'true' if i == 0 else 'false'}",
                ]
            )
            # Finished by an earlier, interrupted invocation (with the same settings)?
            done = finished_results(cfg) if resume else None
            runs[loss].append(done if done is not None else run_distill(cfg, features))
    return runs


def compare_rows(runs: dict[str, list[dict]], losses: list[str], seeds: list[int]):
    """The table's title and rows (name, pooled accuracies, runs): random real, then each loss."""
    first = runs[losses[0]]
    rows = [("random real (init)", _pooled(first, "random_real"), None)]
    names = [runs[loss][0]["label"] for loss in losses]
    # Two variants of one loss (e.g. released and recommended HDD) are told apart by group.
    labels = [
        f"{x} ({loss})" if names.count(x) > 1 else x for x, loss in zip(names, losses, strict=True)
    ]
    rows += [
        (label, _pooled(runs[loss], "distilled"), runs[loss])
        for label, loss in zip(labels, losses, strict=True)
    ]
    return f"{first[0]['dataset']} IPC {first[0]['ipc']}, seeds {seeds}", rows


def compare_table(title: str, rows: list) -> str:
    """The Markdown table of ``compare_rows``."""
    lines = [
        f"### {title}",
        "",
        "| set | accuracy (%) | networks | distill s/run |",
        "|---|---|---|---|",
    ]
    for name, accs, rs in rows:
        secs = f"{statistics.fmean(r['distill_seconds'] for r in rs):.0f}" if rs else "—"
        lines.append(f"| {name} | {_cell(accs)} | {len(accs)} | {secs} |")
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name as Linux reports it ('' elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else ""


def machine() -> dict:
    """What a result file records about the machine it was measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_model": cpu_model(),
        "bf16_native": cpu_bf16_native(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
