"""Named loss terms on the per-class features of one matching pass.

A method's step is a sum of terms: each maps the features of every class (the real ones
with their weights, the synthetic ones, and whatever else the method extracted, such as
attention maps of intermediate layers) to per-class losses (C,), already weighted. The
step logs each term as ``train/<name>``. ``LossTerm`` puts a ``MatchingLoss`` (DM's mean,
HDD's centroid) on one kind of feature; a method adds its own terms beside it, and a
config can add more to any method (``method.terms``; docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce
from typing import Any, ClassVar

from torch import Tensor, nn

from src.matching.base import MatchingLoss

EMBED = "embed"  # the network's final embedding, (N, D): every extraction provides it


@dataclass
class ClassFeatures:
    """One matching pass's features, grouped by class.

    ``real[kind]`` is (C, B, ...) with ``real_weights`` (C, B) (0 marks padding), ``syn[kind]``
    is (C, S, ...); ``kind`` names what the method extracted (``"embed"`` always).
    ``syn_logits`` (C, S, classes) when the method asked for them.
    """

    real: Mapping[str, Tensor]
    real_weights: Tensor
    syn: Mapping[str, Tensor]
    syn_logits: Tensor | None = None


class FeatureTerm(nn.Module):
    """A weighted per-class loss term on :class:`ClassFeatures`; ``forward`` returns (C,)."""

    name: ClassVar[str] = "term"

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, features: ClassFeatures) -> Tensor:
        """Per-class values of the term times its weight, shape (C,)."""
        return self.weight * self.per_class(features)

    def per_class(self, features: ClassFeatures) -> Tensor:
        """Per-class values of the unweighted term, shape (C,)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the run's metadata records of the term."""
        return {"name": self.name, "weight": self.weight}


class LossTerm(FeatureTerm):
    """A matching loss on one kind of feature: ``weight * loss(real[kind], w, syn[kind])``."""

    name = "match"

    def __init__(self, loss: MatchingLoss, kind: str = EMBED, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.loss = loss
        self.kind = kind

    def forward(self, features: ClassFeatures) -> Tensor:
        """The loss (times its weight when that is not 1, so DM's arithmetic is unchanged)."""
        losses = self.per_class(features)
        return losses if self.weight == 1.0 else self.weight * losses

    def per_class(self, features: ClassFeatures) -> Tensor:
        """The matching loss per class."""
        kind = self.kind
        return self.loss(features.real[kind], features.real_weights, features.syn[kind])

    def describe(self) -> dict[str, Any]:
        """The loss's name and settings, the feature it reads and the weight."""
        return {"loss": self.loss.describe(), "kind": self.kind, "weight": self.weight}


def total(terms: Mapping[str, Tensor]) -> Tensor:
    """The per-class sum of the terms (C,), added in their order."""
    return reduce(lambda a, b: a + b, terms.values())
