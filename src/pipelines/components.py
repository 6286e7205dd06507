"""Build the pieces of a run from its composed config."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf
from torch import nn

import src.compute.sharding  # noqa: F401  (registers strategy: ddp_classes with Lightning)
from src.augment import DSA
from src.data import DatasetInfo, RealPool
from src.errors import ConfigError, HDDError
from src.evaluation import EvalProtocol, EvalResult, evaluate_set
from src.io import DistilledSet, check_matches, load_distilled
from src.matching import MatchingLoss
from src.matching.terms import FeatureTerm
from src.methods.base import SyntheticSetModule


def to_dict(cfg: Any) -> dict:
    """A plain, resolved dict of a config node (empty for None)."""
    if cfg is None:
        return {}
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


# What a node without ``_target_`` builds: a bare ``{name: ...}`` (an ``eval.models`` entry, a
# distilled set's metadata, a config saved before the groups named their builders) means the
# builder its group's YAML files name.
MODEL_BUILDER = "src.models.build_model"
DATASET_BUILDER = "src.data.load_dataset"
TRAINER_BUILDER = "lightning.pytorch.Trainer"


def build_partial(node: Any, default_target: str, group: str) -> Callable[..., Any]:
    """The factory a group's node names (``_target_``, ``_partial_``), for the caller to
    complete with what only the run knows (image shape, split, callbacks)."""
    spec = {"_target_": default_target, **to_dict(node), "_partial_": True, "_convert_": "all"}
    return instantiate(OmegaConf.create(spec), group)


def network_spec(model_cfg: Any) -> dict:
    """A network's name and settings: its config node without the build keys."""
    return {k: v for k, v in to_dict(model_cfg).items() if not k.startswith("_")}


def model_factory(model_cfg: Any, info: DatasetInfo) -> Callable[[], nn.Module]:
    """A no-argument constructor of the configured network for ``info``'s images."""
    # Unset options (null) take the network's defaults; a missing name is reported by the builder.
    spec = {"name": None} | {k: v for k, v in to_dict(model_cfg).items() if v is not None}
    build = build_partial(spec, MODEL_BUILDER, "model")
    factory = partial(
        build, channels=info.channels, num_classes=info.num_classes, im_size=info.im_size
    )
    factory()  # fail now, not mid-run, on an unknown name or options the network does not take
    return factory


def trainer_factory(trainer_cfg: Any) -> Callable[..., L.Trainer]:
    """``Trainer(**limits)`` on the configured accelerator, devices, precision and strategy."""
    return build_partial(trainer_cfg, TRAINER_BUILDER, "trainer")


def build_loss(loss_cfg: DictConfig) -> MatchingLoss:
    """Instantiate the configured matching loss."""
    return instantiate(loss_cfg, "loss")


def build_augment(augment_cfg: DictConfig) -> DSA:
    """Instantiate the configured augmentation."""
    return instantiate(augment_cfg, "augment")


def instantiate(node: DictConfig, group: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that re-raises the project's own errors unwrapped."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, HDDError):
            raise cause from None
        raise ConfigError(f"cannot build {group}: {cause or exc}") from None


def load_distilled_with_data(
    cfg: DictConfig, train: bool
) -> tuple[DistilledSet, DatasetInfo, RealPool]:
    """``cfg.distilled`` and a split of its data set (``cfg.dataset`` or the file's), checked."""
    ds = load_distilled(cfg.distilled)
    info, pool = load_data(dataset_node(cfg, ds.meta.get("dataset")), train=train)
    check_matches(
        ds, info.channels, info.im_size, info.num_classes, cfg.distilled, dataset=info.name
    )
    return ds, info, pool


def dataset_node(cfg: DictConfig, name: str | None) -> DictConfig:
    """``cfg.dataset`` or, when it is null, the node of the data set named ``name``."""
    return cfg.get("dataset") or OmegaConf.create(
        {"name": name, "root": cfg.paths.data_dir, "download": True}
    )


def load_data(dataset_cfg: DictConfig, train: bool = True) -> tuple[DatasetInfo, RealPool]:
    """The data set's description and one split as a RealPool."""
    return build_partial(dataset_cfg, DATASET_BUILDER, "dataset")(train=train)


def build_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    """Instantiate every configured Lightning logger; W&B runs of one sweep share a group."""
    from src.pipelines.publish import sweep_identity

    loggers = []
    for node in (logger_cfg or {}).values():
        if str(node.get("_target_", "")).endswith("WandbLogger"):
            extra = {k: v for k, v in sweep_identity().items() if node.get(k) is None}
            node = OmegaConf.merge(node, extra)
        loggers.append(instantiate(node, "logger"))
    return loggers


def method_class(method_cfg: DictConfig) -> type[SyntheticSetModule]:
    """The LightningModule class the method node's ``_target_`` names (nothing is built)."""
    target = method_cfg.get("_target_") if method_cfg is not None else None
    try:
        cls = hydra.utils.get_class(str(target))
    except Exception:  # hydra reports a missing target with several exception types
        raise ConfigError(f"method._target_ names no class: {target!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, SyntheticSetModule)):
        raise ConfigError(f"method._target_ {target!r} is not a distillation method class")
    return cls


def build_terms(method_cfg: DictConfig) -> dict[str, FeatureTerm]:
    """The loss terms a config adds to its method (``method.terms``: name -> node)."""
    nodes = method_cfg.get("terms") or {}
    return {name: instantiate(node, f"method.terms.{name}") for name, node in nodes.items()}


def _label_pieces(cfg: DictConfig) -> tuple[type[SyntheticSetModule], MatchingLoss, dict | None]:
    loss = build_loss(cfg.loss)
    reference = cfg.get(loss.reference_node) if loss.reference_node else None
    return method_class(cfg.method), loss, None if reference is None else to_dict(reference)


def run_label(cfg: DictConfig) -> str:
    """A run's paper name from its config alone, as its method and loss classes state it."""
    cls, loss, reference = _label_pieces(cfg)
    return cls.paper_label(to_dict(cfg.method), loss, reference)


def label_parts(cfg: DictConfig) -> tuple[str, str]:
    """The method's part of a run's name (label and its variants) and the loss's (suffix and
    variant; "" for the method's own loss at its defaults): a study's row and column."""
    cls, loss, reference = _label_pieces(cfg)
    variant = cls.variant(to_dict(cfg.method))
    method = cls.label + (f" ({', '.join(variant)})" if variant else "")
    return method, (loss.label_suffix + loss.variant(reference)).strip()


def build_method(cfg: DictConfig, info: DatasetInfo, pool: RealPool) -> SyntheticSetModule:
    """The configured distillation LightningModule, with its loss, DSA and network factory."""
    # A class too small for the initial set fails in RealPool.random_per_class (validation
    # has already said so for the registered data sets).
    return instantiate(
        cfg.method,
        "method",
        pool=pool,
        net_factory=model_factory(cfg.model, info),
        loss=build_loss(cfg.loss),
        augment=build_augment(cfg.augment),
        ipc=cfg.ipc,
        iterations=cfg.iterations,
        seed=cfg.seed,
        terms=build_terms(cfg.method),
        data_dir=cfg.paths.data_dir,
        _recursive_=False,
    )


def build_evaluator(
    cfg: DictConfig,
    info: DatasetInfo,
    test_pool: RealPool,
    augment: DSA | None,
    model_cfg: Any = None,
) -> Callable[..., EvalResult]:
    """``evaluate_set(images, labels)`` bound to the run's protocol, network, DSA and seed.

    ``model_cfg`` replaces the evaluation network (``eval.model``, else ``model``).
    """
    return partial(
        evaluate_set,
        test_pool=test_pool,
        model_factory=model_factory(model_cfg or cfg.eval.model or cfg.model, info),
        augment=augment,
        protocol=EvalProtocol.from_config(cfg.eval, cfg.seed),
        make_trainer=trainer_factory(cfg.trainer),
    )
