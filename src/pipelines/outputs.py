"""The last stage of a distillation run: the set saved and pictured, evaluated, recorded."""

from __future__ import annotations

from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.data import DatasetInfo
from src.errors import RunInterrupted
from src.evaluation import EvalResult
from src.io import save_distilled
from src.io.kept import KEPT_FILE, save_kept_indices
from src.methods.base import SyntheticSetModule
from src.pipelines.components import model_factory, run_label
from src.pipelines.cross_arch import cross_table, eval_augment, evaluate_across
from src.pipelines.diagnostics import diagnostic_lift
from src.pipelines.geometry import render_geometry
from src.pipelines.run import DISTILLED_FILE, Run
from src.pipelines.study import baseline_key, recorded_baseline
from src.pruning import Pruner
from src.viz import save_image_grid


def save_set(run: Run, images: Tensor, labels: Tensor, meta: dict) -> None:
    """The distilled set, its grid, the kept indices and the geometry pictures."""
    cfg, info, out = run.cfg, run.info, run.out
    save_distilled(out / DISTILLED_FILE, images, labels, meta)
    save_image_grid(out / "distilled.png", run.pool.denormalize(images), labels, info.num_classes)
    if run.kept is not None:
        save_kept_indices(out / KEPT_FILE, run.kept)
    if not cfg.geometry.enabled or run.sharded:  # its initial set holds some classes only
        return
    lift = diagnostic_lift(cfg)
    render_geometry(
        out,
        run.pool,
        {"before": run.initial, "after": (images, labels)},
        model_factory(cfg.model, info),
        lift["k"],
        info.names(),
        list(cfg.geometry.classes),
        real_per_class=cfg.geometry.real_per_class,
        seed=cfg.seed,
        factor=run.module.factor,
        real_name="real" if run.kept is None else "real (kept pool)",
        lift_kind=lift["kind"],
        max_radius=lift["max_radius"],
    )


def evaluate_final(run: Run, images: Tensor, labels: Tensor) -> dict:
    """The random real baseline, the final set and, with ``eval.models``, the pool."""
    cfg, factor, out = run.cfg, run.module.factor, {}
    if run.evaluate is None:
        return out
    try:
        if run.baseline is not None:
            out |= evaluate_baseline(run)
        if cfg.eval.final:
            out["distilled"] = run.evaluate(images, labels, factor=factor).as_dict()
        if cfg.eval.final and (cfg.eval.models or cfg.eval.robust):
            sets = {"distilled": (images, labels, factor)}
            if run.baseline is not None:
                sets = {"random_real": (*run.baseline, 1)} | sets
            done = {(cfg.eval.model or cfg.model).name: out}  # the evaluations above
            out["architectures"] = evaluate_across(
                cfg, run.info, run.test_pool, run.module.augment, sets, done
            )
    except SIGTERMException:
        raise RunInterrupted(
            f"stopped by SIGTERM during evaluation; the distilled set is complete in "
            f"{run.out / DISTILLED_FILE}: evaluate it with python -m src.evaluate distilled=..."
        ) from None
    return out


def evaluate_baseline(run: Run) -> dict:
    """The random real baseline's accuracies and key, from the study record when it has them."""
    cfg, augment = run.cfg, eval_augment(run.cfg, run.module.augment)
    protocol = {
        "eval": OmegaConf.to_container(cfg.eval, resolve=True),
        "model": OmegaConf.to_container(cfg.eval.model or cfg.model, resolve=True),
        "trainer": OmegaConf.to_container(cfg.trainer, resolve=True),
        "seed": cfg.seed,
        "augment": augment and {type(augment).__name__: vars(augment)},
    }
    key = baseline_key(*run.baseline, protocol)
    found = recorded_baseline(cfg, key)
    if found is not None:
        print("random real baseline: the same images and protocol are in the study record")
    return {"random_real": found or run.evaluate(*run.baseline).as_dict(), "random_real_key": key}


def distilled_metadata(
    cfg: DictConfig, info: DatasetInfo, module: SyntheticSetModule, pruner: Pruner
) -> dict:
    """What a distilled-set file records about its run."""
    return {
        "dataset": info.name,
        "ipc": cfg.ipc,
        "label": run_label(cfg),
        "method": module.describe(),
        "loss": module.loss.describe(),
        "iteration": module.completed_iterations,
        "seed": cfg.seed,
        "num_classes": info.num_classes,
        "mean": list(info.mean),
        "std": list(info.std),
        "class_names": info.names(),
        "prune": pruner.describe(),
        "geometry_lift": diagnostic_lift(cfg),  # the lift of its pictures and diagnostics
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def log_results(loggers: list, results: dict, step: int) -> None:
    """Send the final accuracies (mean, std, per network) to every logger."""
    metrics = {}
    for key in ("random_real", "distilled"):
        if key in results:
            r = results[key]
            metrics |= {f"final/{key}_acc_mean": r["mean"], f"final/{key}_acc_std": r["std"]}
            metrics |= {f"final/{key}_acc_net{i}": a for i, a in enumerate(r["accuracies"])}
    for arch, scores in results.get("architectures", {}).items():
        metrics |= {
            f"final/{arch}/{key}_mean": value["mean"]
            for key, value in scores.items()
            if isinstance(value, dict) and "mean" in value
        }
    if not metrics:
        return  # nothing was evaluated: no empty row
    for logger in loggers:
        logger.log_metrics(metrics, step=step)
        logger.save()


def format_results(results: dict) -> str:
    """A Markdown table of one run's evaluations."""
    rows = ["| set | accuracy (%) | networks |", "|---|---|---|"]
    names = {"random_real": "random real (init)", "distilled": results["label"]}
    for key in ("random_real", "distilled"):
        if key in results:
            r = EvalResult(results[key]["accuracies"])
            rows.append(f"| {names[key]} | {r} | {len(r.accuracies)} |")
    head = f"{results['dataset']} IPC {results['ipc']} seed {results['seed']}"
    text = head + "\n" + "\n".join(rows)
    if "architectures" in results:
        text += "\n\n" + cross_table(results["architectures"], "Across architectures:")
    return text
