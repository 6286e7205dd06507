"""Checks of every config value that can be wrong, before any work starts.

All problems of a config are collected and reported together, one line each, so a user
fixes a sweep's config in one round instead of one error per launch.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from src.checks import Problems
from src.compute import check_chunk
from src.compute.precision import warn_if_slow_precision
from src.data import DatasetInfo, dataset_info
from src.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


def validate_eval(cfg: DictConfig, problems: Problems | None = None) -> None:
    """The evaluation protocol's values."""
    own = problems is None
    problems = problems or Problems()
    problems.int_at_least(cfg.eval.num_models, "eval.num_models", 1)
    problems.int_at_least(cfg.eval.epochs, "eval.epochs", 1)
    problems.int_at_least(cfg.eval.batch_size, "eval.batch_size", 1)
    for key in ("train_chunk", "test_chunk"):
        problems.attempt(lambda key=key: check_chunk(cfg.eval.get(key, "auto"), f"eval.{key}"))
    problems.positive(cfg.eval.lr, "eval.lr")
    problems.in_range(cfg.eval.momentum, "eval.momentum", 0, 1, "l")
    problems.in_range(cfg.eval.weight_decay, "eval.weight_decay", 0, float("inf"), "l")
    from src.pipelines.cross_arch import eval_augment

    problems.attempt(lambda: eval_augment(cfg, None))
    if own:
        problems.raise_if_any()


def validate_distill(cfg: DictConfig) -> None:
    """A distillation run's values: all of them, before data are loaded or networks built."""
    from src.io.checkpoint import resolve_resume
    from src.pipelines.components import (
        build_augment,
        build_loss,
        instantiate,
        model_factory,
        network_spec,
    )
    from src.pipelines.cross_arch import architecture_specs

    p = Problems()
    info: DatasetInfo | None = p.attempt(lambda: dataset_info(cfg.dataset))
    p.int_at_least(cfg.ipc, "ipc", 1)
    p.int_at_least(cfg.iterations, "iterations", 1)
    p.int_at_least(cfg.seed, "seed", 0)
    p.int_at_least(cfg.checkpoint.every, "checkpoint.every", 1)
    p.int_at_least(cfg.grid_every, "grid_every", 1)
    _method(cfg, p)
    if info is not None:
        _fits_dataset(cfg, info, p)
        _shards(cfg, info, p)
        p.attempt(lambda: model_factory(cfg.model, info))
        own = network_spec(cfg.model)
        for spec in (p.attempt(lambda: architecture_specs(cfg)) or {}).values():
            if spec != own:  # the run's network is checked once, above
                p.attempt(lambda spec=spec: model_factory(spec, info))
        for c in cfg.geometry.classes:
            if not isinstance(c, int) or not 0 <= c < info.num_classes:
                p.add(f"geometry.classes entries must lie in [0, {info.num_classes}), got {c!r}")
    p.int_at_least(cfg.geometry.real_per_class, "geometry.real_per_class", 1)
    if cfg.geometry.get("every") is not None:
        p.int_at_least(cfg.geometry.every, "geometry.every", 1)
    if cfg.loss.get("scale") is not None:
        p.positive(cfg.loss.scale, "loss.scale")
    p.attempt(lambda: build_loss(cfg.loss))
    if cfg.prune.get("keep_ratio") is not None:
        p.in_range(cfg.prune.keep_ratio, "prune.keep_ratio", 0, 1, "r")
    p.attempt(lambda: instantiate(cfg.prune, "prune"))
    p.attempt(lambda: build_augment(cfg.augment))
    for step in cfg.eval.eval_at:
        if not isinstance(step, int) or not 1 <= step <= cfg.iterations:
            p.add(f"eval.eval_at entries must lie in [1, iterations], got {step!r}")
    validate_eval(cfg, p)
    _trainer(cfg.trainer, p)
    _paths(cfg, p)
    p.attempt(lambda: resolve_resume(cfg.resume, cfg.paths.output_dir))
    p.raise_if_any()


def _method(cfg: DictConfig, p: Problems) -> None:
    """The method's own check of its node, and the terms a config adds to it."""
    from src.pipelines.components import build_terms, label_parts, method_class, to_dict

    cls = p.attempt(lambda: method_class(cfg.method))
    if cls is not None:
        cls.check_settings(to_dict(cfg.method), p)
        with suppress(ConfigError):  # a bad loss node: the loss's own check reports it
            cls.check_loss(to_dict(cfg.method), label_parts(cfg)[1], p)
    p.attempt(lambda: build_terms(cfg.method))


def _shards(cfg: DictConfig, info: DatasetInfo, p: Problems) -> None:
    """A class-sharded run (``classes=`` or ``trainer=ddp_classes``): its classes, a method
    whose classes are independent, and per-class random streams."""
    from src.compute.sharding import run_classes, shards_classes
    from src.pipelines.components import method_class

    if cfg.get("classes") is None and not shards_classes(cfg.trainer):
        return
    p.attempt(lambda: run_classes(cfg.get("classes"), cfg.trainer, info.num_classes))
    cls = p.attempt(lambda: method_class(cfg.method))
    if cls is not None and not cls.class_separable:
        p.add(
            f"{cls.label} learns networks from every class, so its classes cannot be sharded "
            "(classes=, trainer=ddp_classes): use trainer=ddp (data-parallel)"
        )
    if cfg.method.get("streams", "per_class") != "per_class":
        p.add("a class-sharded run needs method.streams=per_class (a generator per class)")


def _fits_dataset(cfg: DictConfig, info: DatasetInfo, p: Problems) -> None:
    factor = cfg.method.get("factor", 1)
    if isinstance(factor, int) and factor >= 1:
        h, w = info.im_size
        if h % factor or w % factor:
            p.add(f"method.factor={factor} does not divide {info.name}'s {h}x{w} images")
        need = cfg.ipc * factor * factor if isinstance(cfg.ipc, int) else None
        if need is not None and info.min_class_size and need > info.min_class_size:
            p.add(
                f"ipc={cfg.ipc} needs {need} real images per class to initialise, but the "
                f"smallest class of {info.name} has {info.min_class_size}"
            )


def _trainer(t: DictConfig, p: Problems) -> None:
    p.one_of(t.accelerator, "trainer.accelerator", ACCELERATORS)
    p.one_of(str(t.precision), "trainer.precision", PRECISIONS)
    warn_if_slow_precision(str(t.accelerator), str(t.precision))
    devices = t.devices
    count = (
        isinstance(devices, int)
        and not isinstance(devices, bool)
        and (devices >= 1 or devices == -1)
    )
    if not (devices == "auto" or count or isinstance(devices, ListConfig | list)):
        p.add(f"trainer.devices must be 'auto', -1, an integer >= 1 or a list, got {devices!r}")


def _paths(cfg: DictConfig, p: Problems) -> None:
    out = Path(cfg.paths.output_dir)
    if out.exists() and not out.is_dir():
        p.add(f"paths.output_dir '{out}' exists and is not a directory")
    else:
        parent = next((d for d in (out, *out.parents) if d.exists()), None)
        if parent is not None and not os.access(parent, os.W_OK):
            p.add(f"paths.output_dir '{out}' is not writable")
    root = Path(str(cfg.dataset.get("root", cfg.paths.data_dir)))
    if root.exists() and not root.is_dir():
        p.add(f"paths.data_dir '{root}' exists and is not a directory")
