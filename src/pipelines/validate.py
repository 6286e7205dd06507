"""Checks of config values that can be wrong, before any work starts."""

from __future__ import annotations

from omegaconf import DictConfig

from src.errors import ConfigError


def _positive_int(value: object, key: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")


def _positive(value: object, key: str) -> None:
    if not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{key} must be a number > 0, got {value!r}")


def validate_eval(cfg: DictConfig) -> None:
    """The evaluation protocol's values."""
    _positive_int(cfg.eval.num_models, "eval.num_models")
    _positive_int(cfg.eval.epochs, "eval.epochs")
    _positive_int(cfg.eval.batch_size, "eval.batch_size")
    _positive(cfg.eval.lr, "eval.lr")


def validate_distill(cfg: DictConfig) -> None:
    """A distillation run's values (class sizes are checked once the data is loaded)."""
    _positive_int(cfg.ipc, "ipc")
    _positive_int(cfg.iterations, "iterations")
    _positive_int(cfg.method.batch_real, "method.batch_real")
    _positive(cfg.method.lr_img, "method.lr_img")
    _positive_int(cfg.checkpoint.every, "checkpoint.every")
    for step in cfg.eval.eval_at:
        if not isinstance(step, int) or not 1 <= step <= cfg.iterations:
            raise ConfigError(f"eval.eval_at entries must lie in [1, iterations], got {step!r}")
    validate_eval(cfg)
