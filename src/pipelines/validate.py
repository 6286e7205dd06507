"""Checks of every config value that can be wrong, before any work starts.

All problems of a config are collected and reported together, one line each, so a user
fixes a sweep's config in one round instead of one error per launch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from src.compute import check_chunk
from src.data import DatasetInfo, get_dataset_info
from src.errors import CheckpointError, ConfigError
from src.methods.base import INITS

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


class Problems:
    """Collects one message per invalid value; ``raise_if_any`` reports them all at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        """Record a problem."""
        self.lines.append(line)

    def attempt(self, build: Callable[[], Any]) -> Any:
        """Run ``build``; a ConfigError (or CheckpointError) becomes a problem, None returned."""
        try:
            return build()
        except (ConfigError, CheckpointError) as exc:
            self.lines.extend(str(exc).splitlines())
            return None

    def int_at_least(self, value: object, key: str, low: int) -> None:
        """``value`` must be an integer >= ``low``."""
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            self.add(f"{key} must be an integer >= {low}, got {value!r}")

    def positive(self, value: object, key: str) -> None:
        """``value`` must be a number > 0."""
        if not _number(value) or not value > 0:
            self.add(f"{key} must be a number > 0, got {value!r}")

    def in_range(self, value: object, key: str, low: float, high: float, closed: str) -> None:
        """``value`` must lie in the interval; ``closed`` names its closed ends ('l', 'r')."""
        ok = _number(value) and (value >= low if "l" in closed else value > low)
        ok = ok and (value <= high if "r" in closed else value < high)
        if not ok:
            interval = (
                f"{'[' if 'l' in closed else '('}{low}, {high}{']' if 'r' in closed else ')'}"
            )
            self.add(f"{key} must lie in {interval}, got {value!r}")

    def one_of(self, value: object, key: str, allowed: tuple) -> None:
        """``value`` must be one of ``allowed``."""
        if value not in allowed:
            self.add(f"{key} must be one of {', '.join(map(str, allowed))}; got {value!r}")

    def raise_if_any(self) -> None:
        """Raise one ConfigError holding every problem, one per line."""
        if self.lines:
            raise ConfigError("\n".join(self.lines))


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    info: DatasetInfo | None = p.attempt(lambda: get_dataset_info(cfg.dataset.name))
    p.int_at_least(cfg.ipc, "ipc", 1)
    p.int_at_least(cfg.iterations, "iterations", 1)
    p.int_at_least(cfg.seed, "seed", 0)
    p.int_at_least(cfg.checkpoint.every, "checkpoint.every", 1)
    p.int_at_least(cfg.grid_every, "grid_every", 1)
    _method(cfg.method, p)
    if info is not None:
        _fits_dataset(cfg, info, p)
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


def _method(m: DictConfig, p: Problems) -> None:
    p.int_at_least(m.batch_real, "method.batch_real", 1)
    p.positive(m.lr_img, "method.lr_img")
    p.in_range(m.momentum, "method.momentum", 0, 1, "l")
    p.one_of(m.init, "method.init", INITS)
    p.int_at_least(m.get("factor", 1), "method.factor", 1)
    if "compile_net" in m:
        p.one_of(m.compile_net, "method.compile_net", (True, False, "auto"))
    p.attempt(lambda: check_chunk(m.get("embed_chunk", "auto"), "method.embed_chunk"))
    if m.name == "idm":
        for key in ("pool_size", "add_net_every", "match_nets", "train_batch"):
            p.int_at_least(m[key], f"method.{key}", 1)
        p.int_at_least(m.acc_reset_interval, "method.acc_reset_interval", 1)
        p.attempt(lambda: check_chunk(m.get("train_chunk", "auto"), "method.train_chunk"))
        p.int_at_least(m.train_nets, "method.train_nets", 0)
        p.int_at_least(m.train_steps, "method.train_steps", 0)
        p.positive(m.lr_net, "method.lr_net")
        p.in_range(m.ce_weight, "method.ce_weight", 0, float("inf"), "l")


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
