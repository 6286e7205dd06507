"""A distillation run: build, fit, save, picture, evaluate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from src.evaluation import EvalResult
from src.evaluation.callback import PeriodicEvaluation
from src.io import atomic_write_text, save_distilled
from src.methods.base import initial_synthetic_set
from src.pipelines.components import (
    build_evaluator,
    build_loggers,
    build_method,
    load_data,
    progress_bar,
    to_dict,
)
from src.pipelines.validate import validate_distill
from src.rng import make_generator
from src.viz import save_image_grid

DISTILLED_FILE = "distilled.safetensors"
RESULTS_FILE = "results.json"


def method_label(method: str, loss: str) -> str:
    """Paper name of a method x loss pair: dm+euclidean = DM, dm+lorentz = DM+HDD."""
    return method.upper() + ("+HDD" if loss == "lorentz" else "")


def run_distill(cfg: DictConfig) -> dict:
    """Distill ``cfg.dataset`` into ``cfg.ipc`` images per class; returns the results dict."""
    validate_distill(cfg)
    out = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # only for third-party code
    info, pool = load_data(cfg.dataset, train=True)
    module = build_method(cfg, info, pool)
    loss, augment = module.loss, module.augment
    needs_eval = cfg.eval.final or cfg.eval.random_baseline or len(cfg.eval.eval_at) > 0
    evaluate = None
    if needs_eval:
        _, test_pool = load_data(cfg.dataset, train=False)
        evaluate = build_evaluator(cfg, info, test_pool, augment)
    periodic = PeriodicEvaluation(list(cfg.eval.eval_at), evaluate) if evaluate else None
    loggers = build_loggers(cfg.get("logger"))
    trainer = L.Trainer(
        max_epochs=1,  # the loader holds one item per outer iteration
        callbacks=[progress_bar(), *([periodic] if periodic else [])],
        logger=loggers or False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **to_dict(cfg.trainer),
    )
    started = time.perf_counter()
    trainer.fit(module)
    seconds = time.perf_counter() - started

    label = method_label(module.method_name, loss.name)
    images, labels = module.synthetic_set()
    meta = {
        "dataset": info.name,
        "ipc": cfg.ipc,
        "method": module.method_name,
        "label": label,
        **loss.describe(),
        "iteration": module.completed_iterations,
        "factor": module.factor,
        "seed": cfg.seed,
        "num_classes": info.num_classes,
        "mean": list(info.mean),
        "std": list(info.std),
        "class_names": info.names(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    results: dict = {"label": label, "dataset": info.name, "ipc": cfg.ipc, "seed": cfg.seed}
    results["distill_seconds"] = seconds
    if trainer.is_global_zero:
        save_distilled(out / DISTILLED_FILE, images, labels, meta)
        save_image_grid(out / "distilled.png", pool.denormalize(images), labels, info.num_classes)
    if periodic:
        results["during"] = {str(k): v.as_dict() for k, v in sorted(periodic.history.items())}
    if evaluate and cfg.eval.random_baseline:
        # Plain real images of the same IPC: for DM exactly the set init=real starts from
        # (a factorised method packs these and further images of the same draw).
        base_images, base_labels = initial_synthetic_set(
            pool, cfg.ipc, "real", make_generator(cfg.seed, "init")
        )
        results["random_real"] = evaluate(base_images, base_labels).as_dict()
    if evaluate and cfg.eval.final:
        results["distilled"] = evaluate(images, labels, factor=module.factor).as_dict()
    if trainer.is_global_zero:
        atomic_write_text(out / RESULTS_FILE, json.dumps(results, indent=2) + "\n")
        print(format_results(results))
        log_results(loggers, results, module.completed_iterations)
    return results


def log_results(loggers: list, results: dict, step: int) -> None:
    """Send the final accuracies (mean, std, per network) to every logger."""
    metrics = {}
    for key in ("random_real", "distilled"):
        if key in results:
            r = results[key]
            metrics |= {f"final/{key}_acc_mean": r["mean"], f"final/{key}_acc_std": r["std"]}
            metrics |= {f"final/{key}_acc_net{i}": a for i, a in enumerate(r["accuracies"])}
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
    return head + "\n" + "\n".join(rows)
