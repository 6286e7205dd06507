"""Evaluate a saved distilled set by the field's protocol."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from src.evaluation import EvalResult
from src.io import atomic_write_text
from src.pipelines.components import (
    build_augment,
    build_evaluator,
    build_loggers,
    load_distilled_with_data,
)
from src.pipelines.validate import validate_eval

EVAL_FILE = "eval_results.json"


def run_evaluate(cfg: DictConfig) -> EvalResult:
    """Train ``eval.num_models`` fresh networks on ``cfg.distilled`` and test them."""
    validate_eval(cfg)
    ds, info, test_pool = load_distilled_with_data(cfg, train=False)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    evaluate = build_evaluator(cfg, info, test_pool, build_augment(cfg.augment))
    result = evaluate(ds.images, ds.labels, factor=int(ds.meta.get("factor", 1)))
    model_name = (cfg.eval.model or cfg.model).name
    for logger in build_loggers(cfg.get("logger")):
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        metrics = {"eval/acc_mean": result.mean, "eval/acc_std": result.std}
        metrics |= {f"eval/acc_net{i}": a for i, a in enumerate(result.accuracies)}
        logger.log_metrics(metrics, step=0)
        logger.finalize("success")
    summary = {"distilled": str(cfg.distilled), "model": model_name, **result.as_dict()}
    atomic_write_text(Path(cfg.paths.output_dir) / EVAL_FILE, json.dumps(summary, indent=2) + "\n")
    print(
        f"{ds.meta.get('label', '?')} {info.name} IPC {ds.meta.get('ipc', '?')} on {model_name}: "
        f"{result} % over {len(result.accuracies)} networks"
    )
    return result
