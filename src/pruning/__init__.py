"""Pruning of the real data before distillation (docs/method.md §4, hierarchical pruning)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from src.data import RealPool
from src.errors import ConfigError
from src.pruning.scores import (
    CRITERIA,
    FeatureCache,
    averaged_features,
    centroid_scores,
    euclidean_scores,
    origin_scores,
)
from src.pruning.select import keep_lowest, kept_count


class Pruner:
    """Chooses which real samples distillation may draw from."""

    name = "none"

    def select(
        self,
        pool: RealPool,
        net_factory: Callable[[], nn.Module],
        generator: torch.Generator,
        minimum: int = 1,
        cache: FeatureCache | None = None,
    ) -> Tensor | None:
        """Sorted indices of the kept samples, or None to keep everything (``cache``: the
        features of earlier scorings in this process, for pruners that embed)."""
        return None

    def describe(self) -> dict:
        """Settings recorded in the distilled set's metadata."""
        return {"name": self.name}


class NoPruning(Pruner):
    """Keep every real sample."""


class RandomPruning(Pruner):
    """Keep a uniformly random ``keep_ratio`` of every class (the control)."""

    name = "random"

    def __init__(self, keep_ratio: float = 0.2) -> None:
        self.keep_ratio = keep_ratio

    def select(self, pool, net_factory, generator, minimum=1, cache=None):
        """Random scores from the run's generator, lowest kept."""
        scores = torch.rand(len(pool), generator=generator, dtype=torch.float64)
        return keep_lowest(scores, pool.labels.cpu(), pool.num_classes, self.keep_ratio, minimum)

    def describe(self) -> dict:
        """Name and ratio."""
        return {"name": self.name, "keep_ratio": self.keep_ratio}


class FeaturePruning(Pruner):
    """Score samples by a criterion on features averaged over ``num_nets`` random networks."""

    criteria: tuple[str, ...] = ()

    def __init__(self, criterion: str, keep_ratio: float = 0.2, num_nets: int = 3, k: float = 1.0):
        if criterion not in self.criteria:
            raise ConfigError(
                f"unknown prune.criterion '{criterion}' for prune={self.name}; "
                f"choose one of: {', '.join(self.criteria)}"
            )
        if num_nets < 1:
            raise ConfigError(f"prune.num_nets must be >= 1, got {num_nets}")
        if not k > 0:
            raise ConfigError(f"prune.k must be > 0, got {k}")
        self.criterion = criterion
        self.keep_ratio = keep_ratio
        self.num_nets = num_nets
        self.k = float(k)

    def scores(self, pool, net_factory, generator, cache: FeatureCache | None = None) -> Tensor:
        """Per-sample scores (N,), lower = more prototypical."""
        features = averaged_features(pool, net_factory, self.num_nets, generator, cache=cache)
        return CRITERIA[self.criterion](features, pool.labels, pool.num_classes, self.k)

    def select(self, pool, net_factory, generator, minimum=1, cache=None):
        """The ``keep_ratio`` lowest-scored samples of every class."""
        scores = self.scores(pool, net_factory, generator, cache)
        return keep_lowest(scores, pool.labels, pool.num_classes, self.keep_ratio, minimum)

    def describe(self) -> dict:
        """Name, criterion, ratio, number of networks and k."""
        return {
            "name": self.name,
            "criterion": self.criterion,
            "keep_ratio": self.keep_ratio,
            "num_nets": self.num_nets,
            "k": self.k,
        }


class HyperbolicPruning(FeaturePruning):
    """HDD's pruning: keep samples nearest the class's Lorentz centroid (or the origin)."""

    name = "hyperbolic"
    criteria = ("centroid", "origin")

    def __init__(self, criterion: str = "centroid", **kwargs) -> None:
        super().__init__(criterion, **kwargs)


class EuclideanPruning(FeaturePruning):
    """The Euclidean control: keep samples nearest the class mean."""

    name = "euclidean"
    criteria = ("euclidean",)

    def __init__(self, **kwargs) -> None:
        kwargs.pop("k", None)
        super().__init__("euclidean", **kwargs)


__all__ = [
    "EuclideanPruning",
    "FeatureCache",
    "FeaturePruning",
    "HyperbolicPruning",
    "NoPruning",
    "Pruner",
    "RandomPruning",
    "averaged_features",
    "centroid_scores",
    "euclidean_scores",
    "keep_lowest",
    "kept_count",
    "origin_scores",
]
