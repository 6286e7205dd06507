"""DataDAM (Sajedi et al., ICCV 2023): attention matching plus the final-embedding term.

Per outer iteration, under one fresh random network (as DM; docs/method.md §6):
- spatial attention of intermediate layers: a(F) = normalize_2(sum_c |F_c|^p) over the
  H*W positions of each image, at every stage output but the last block's and the final
  pooling's (the ConvNet's first depth-1 ReLU outputs, before their pools);
- ``attention`` term: ``attention_weight * sum_l |mean_i a_l(r_i) - mean_j a_l(s_j)|^2``;
- ``match`` term: the run's loss on the final embedding times ``100 * task_balance``
  (``loss=euclidean``: DataDAM's squared mean distance; ``loss=lorentz``: HDD's centroid
  distance, the attention term staying Euclidean).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from src.checks import Problems
from src.matching import EuclideanMeanLoss
from src.matching.terms import EMBED, ClassFeatures, FeatureTerm, LossTerm
from src.methods.dm import DistillModule
from src.models.stages import stage_outputs

ATTENTION = "attention"


def spatial_attention(features: Tensor, power: float = 1.0) -> Tensor:
    """``normalize_2(sum_c |F_c|^p)``: (N, C, H, W) maps -> (N, H*W), unit L2 norm per image."""
    return F.normalize(features.abs().pow(power).sum(dim=1).flatten(1), p=2, dim=1)


class AttentionTerm(FeatureTerm):
    """``sum_l |mean_i a_l(r_i) - mean_j a_l(s_j)|^2`` per class over the attention kinds."""

    name = ATTENTION

    def __init__(self, kinds: list[str], weight: float = 100.0) -> None:
        super().__init__(weight)
        self.kinds = list(kinds)
        self.distance = EuclideanMeanLoss()

    def per_class(self, features: ClassFeatures) -> Tensor:
        """The squared distances of the attention means, summed over layers, per class."""
        w = features.real_weights
        return sum(self.distance(features.real[k], w, features.syn[k]) for k in self.kinds)

    def describe(self) -> dict[str, Any]:
        """Name, weight and the layers it reads."""
        return super().describe() | {"kinds": self.kinds}


class DataDAMModule(DistillModule):
    """DataDAM and DataDAM+HDD: DM's step with the attention term beside the loss."""

    label = "DataDAM"
    variant_keys = ("power", "attention_weight", "task_balance")

    def __init__(
        self,
        *args: Any,
        power: float = 1.0,
        attention_weight: float = 100.0,
        task_balance: float = 0.01,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "datadam")
        super().__init__(*args, **kwargs)
        self.power = float(power)
        self.attention_weight = float(attention_weight)
        self.task_balance = float(task_balance)
        # The attention kinds the extraction provides, one per intermediate layer.
        self.attention_kinds = [
            f"{ATTENTION}{i}" for i in range(len(self.net_factory().stages()) - 2)
        ]

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], p: Problems) -> None:
        """DM's settings, and the attention power and weights."""
        super().check_settings(settings, p)
        p.positive(settings.get("power"), "method.power")
        p.in_range(
            settings.get("attention_weight"), "method.attention_weight", 0, float("inf"), "l"
        )
        p.positive(settings.get("task_balance"), "method.task_balance")

    def own_terms(self) -> dict[str, FeatureTerm]:
        """The attention term and the loss on the final embedding."""
        return {
            ATTENTION: AttentionTerm(self.attention_kinds, self.attention_weight),
            "match": LossTerm(self.loss, EMBED, 100.0 * self.task_balance),
        }

    def extractor(self, net: nn.Module) -> Callable[[Tensor], dict[str, Tensor]]:
        """The final embedding and the attention vectors of the intermediate layers."""

        def extract(x: Tensor) -> dict[str, Tensor]:
            stages = stage_outputs(net, x)
            kinds = self.attention_kinds
            layers = zip(kinds, stages[: len(kinds)], strict=True)
            out = {kind: spatial_attention(f, self.power) for kind, f in layers}
            return out | {EMBED: stages[-1].flatten(1)}

        return extract

    def describe(self) -> dict[str, Any]:
        """DM's record, and the attention settings."""
        return super().describe() | {
            "power": self.power,
            "attention_weight": self.attention_weight,
            "task_balance": self.task_balance,
        }
