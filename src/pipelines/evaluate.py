"""Evaluate a saved distilled set by the field's protocol, across architectures when asked,
or measure the whole-training-set reference."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError
from src.evaluation import EvalProtocol, EvalResult
from src.evaluation.whole_set import load_cached, save_cached
from src.io import atomic_write_text
from src.methods.base import init_generator, initial_synthetic_set
from src.pipelines.components import (
    build_augment,
    build_evaluator,
    build_loggers,
    dataset_node,
    load_data,
    load_distilled_with_data,
    network_spec,
    to_dict,
)
from src.pipelines.cross_arch import cross_table, eval_augment, evaluate_across
from src.pipelines.validate import validate_eval

EVAL_FILE = "eval_results.json"


def run_evaluate(cfg: DictConfig) -> EvalResult | dict:
    """``whole_set=true``: the whole-set reference; ``eval.models``: a cross-architecture
    table; otherwise ``eval.num_models`` fresh networks trained on ``cfg.distilled``."""
    validate_eval(cfg)
    if cfg.get("whole_set"):
        return run_whole_set(cfg)
    if not cfg.get("distilled"):
        raise ConfigError("distilled=PATH is required (or whole_set=true)")
    if cfg.eval.get("models") or cfg.eval.get("robust"):
        return run_across(cfg)
    return run_single(cfg)


def run_single(cfg: DictConfig) -> EvalResult:
    """Train ``eval.num_models`` fresh networks on ``cfg.distilled`` and test them."""
    ds, info, test_pool = load_distilled_with_data(cfg, train=False)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    augment = eval_augment(cfg, build_augment(cfg.augment))
    evaluate = build_evaluator(cfg, info, test_pool, augment)
    result = evaluate(ds.images, ds.labels, factor=ds.factor)
    model_name = (cfg.eval.model or cfg.model).name
    metrics = {"eval/acc_mean": result.mean, "eval/acc_std": result.std}
    metrics |= {f"eval/acc_net{i}": a for i, a in enumerate(result.accuracies)}
    log_once(cfg, metrics)
    summary = {"distilled": str(cfg.distilled), "model": model_name, **result.as_dict()}
    atomic_write_text(Path(cfg.paths.output_dir) / EVAL_FILE, json.dumps(summary, indent=2) + "\n")
    print(
        f"{ds.meta.get('label', '?')} {info.name} IPC {ds.meta.get('ipc', '?')} on {model_name}: "
        f"{result} % over {len(result.accuracies)} networks"
    )
    return result


def run_across(cfg: DictConfig) -> dict:
    """The distilled set and a random real subset of its IPC on every ``eval.models`` entry."""
    ds, info, test_pool = load_distilled_with_data(cfg, train=False)
    _, train_pool = load_data(dataset_node(cfg, info.name), train=True)
    ipc = int(ds.meta.get("ipc") or len(ds.labels) // info.num_classes)
    # The same draw as a distillation run's random baseline (and DM's init) with this seed and
    # the set's streams (a set from before per-class streams records none: shared).
    streams = ds.meta.get("config", {}).get("method", {}).get("streams", "shared")
    init = init_generator(cfg.seed, streams, train_pool.classes)
    random_real = initial_synthetic_set(train_pool, ipc, "real", init)
    del train_pool
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    sets = {
        "random_real": (*random_real, 1),
        "distilled": (ds.images, ds.labels, ds.factor),
    }
    results = evaluate_across(cfg, info, test_pool, build_augment(cfg.augment), sets)
    metrics = {
        f"eval/{arch}/{key}_mean": value["mean"]
        for arch, scores in results.items()
        for key, value in scores.items()
        if isinstance(value, dict) and "mean" in value
    }
    log_once(cfg, metrics)
    summary = {"distilled": str(cfg.distilled), "ipc": ipc, "architectures": results}
    atomic_write_text(Path(cfg.paths.output_dir) / EVAL_FILE, json.dumps(summary, indent=2) + "\n")
    title = f"{ds.meta.get('label', '?')} {info.name} IPC {ipc}, {cfg.eval.num_models} networks"
    print(cross_table(results, title + f" x {cfg.eval.epochs} epochs per cell"))
    return results


def run_whole_set(cfg: DictConfig) -> EvalResult:
    """Train on the whole training set of ``cfg.dataset`` (cached in the data directory)."""
    if cfg.get("dataset") is None:
        raise ConfigError("whole_set=true needs dataset=NAME")
    info, train_pool = load_data(cfg.dataset, train=True)
    _, test_pool = load_data(cfg.dataset, train=False)
    if cfg.eval.get("models"):
        raise ConfigError("whole_set=true measures one network: use model=..., not eval.models")
    model = network_spec(cfg.eval.get("model") or cfg.model)
    augment = eval_augment(cfg, build_augment(cfg.augment))
    protocol = whole_set_protocol(cfg, info.name, model, augment is not None)
    cached = load_cached(cfg.paths.data_dir, protocol)
    if cached is not None:
        print(f"whole {info.name} training set on {model['name']}: {cached} % (cached)")
        return cached
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    epochs_cfg = OmegaConf.merge(cfg, {"eval": {"epochs": cfg.whole_set_epochs}})
    evaluate = build_evaluator(epochs_cfg, info, test_pool, augment, model_cfg=model)
    result = evaluate(train_pool.get(torch.arange(len(train_pool))), train_pool.labels)
    path = save_cached(cfg.paths.data_dir, protocol, result)
    print(f"whole {info.name} training set on {model['name']}: {result} % (cached in {path})")
    return result


def whole_set_protocol(cfg: DictConfig, dataset: str, model: dict, augmented: bool) -> dict:
    """Everything that defines a whole-set measurement (its cache key): the evaluation
    protocol at ``whole_set_epochs``, without the chunk sizes (how the work is split)."""
    protocol = asdict(EvalProtocol.from_config(cfg.eval, cfg.seed))
    protocol = {k: v for k, v in protocol.items() if not k.endswith("_chunk")}
    protocol["epochs"] = cfg.whole_set_epochs
    augment = to_dict(cfg.augment) if augmented else None
    return {"dataset": dataset, "model": model, **protocol, "augment": augment}


def log_once(cfg: DictConfig, metrics: dict) -> None:
    """The resolved config and one row of metrics to every configured logger."""
    for logger in build_loggers(cfg.get("logger")):
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(metrics, step=0)
        logger.finalize("success")
