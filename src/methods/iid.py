"""IID (Deng et al., CVPR 2024): DM's or IDM's step plus covariance matching and class
centralisation (docs/method.md §12.4).

Two terms beside the method's own, per class c:
- ``covariance``: ``cov_weight * |Sigma(real_c) - Sigma(syn_c)|_F^2`` with Sigma the
  channel x channel covariance of the matching network's last feature map, F_i (channels x
  positions): ``Sigma = mean_i (F_i - mean F)(F_i - mean F)^T`` (centred per channel and
  position, divided by n, summed over positions);
- ``spread``: ``spread_weight * sum_j |g_j - mean_j g_j|^2`` over the synthetic images'
  embeddings g under an expert (a trained ResNet-18 of a pool, one drawn per iteration).
At IPC 1 both vanish for the synthetic set, so IID is its base method there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from src.checks import Problems
from src.matching.terms import EMBED, ClassFeatures, FeatureTerm
from src.methods.dm import DistillModule
from src.methods.experts import expert_protocol, pool_for
from src.methods.idm import IDMModule
from src.models import build_model
from src.models.stages import stage_outputs
from src.rng import make_generator

LOCAL = "local"  # the last feature map, (channels, positions)
EXPERT = "expert"  # the synthetic images' embedding under an expert


def weighted_covariance(features: Tensor, weights: Tensor) -> Tensor:
    """Per class ``sum_i w_i D_i D_i^T / sum_i w_i`` with ``D_i = F_i - sum_i w_i F_i / sum w``:
    features (C, B, K, S), weights (C, B) -> (C, K, K)."""
    w = weights.to(features.dtype)
    norm = w.sum(dim=1).view(-1, 1, 1, 1)
    centred = features - (w.view(*w.shape, 1, 1) * features).sum(dim=1, keepdim=True) / norm
    return torch.einsum("cbks,cbls,cb->ckl", centred, centred, w) / norm.view(-1, 1, 1)


class CovarianceTerm(FeatureTerm):
    """``|Sigma(real) - Sigma(syn)|_F^2`` per class over the ``local`` feature maps."""

    name = "covariance"

    def per_class(self, features: ClassFeatures) -> Tensor:
        """The squared Frobenius distance of the two channel covariances, per class."""
        real, syn = features.real[LOCAL], features.syn[LOCAL]
        syn_weights = torch.ones(syn.shape[:2], dtype=real.dtype, device=syn.device)
        diff = weighted_covariance(real, features.real_weights) - weighted_covariance(
            syn, syn_weights
        )
        return diff.pow(2).sum(dim=(1, 2))


class SpreadTerm(FeatureTerm):
    """``sum_j |g_j - mean(g)|^2`` per class over the synthetic ``expert`` embeddings."""

    name = "spread"

    def per_class(self, features: ClassFeatures) -> Tensor:
        """The synthetic images' squared distances to their class mean, summed."""
        g = features.syn[EXPERT]
        return (g - g.mean(dim=1, keepdim=True)).pow(2).sum(dim=(1, 2))


class IIDTerms:
    """What IID adds to a method (mixed in before DM's or IDM's module class)."""

    variant_keys = ("cov_weight", "spread_weight")

    def __init__(
        self,
        *args: Any,
        cov_weight: float = 0.01,
        spread_weight: float = 0.05,
        experts: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.cov_weight = float(cov_weight)
        self.spread_weight = float(spread_weight)
        settings = dict(experts or {})
        self.experts_dataset = str(settings.pop("dataset", "data"))
        self.expert_model = str(settings.pop("model", "resnet18"))
        self.expert_protocol = expert_protocol(settings)
        self.expert: nn.Module | None = None

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], p: Problems) -> None:
        """The base method's settings, the two weights and the expert pool's."""
        super().check_settings(settings, p)
        for key in ("cov_weight", "spread_weight"):
            p.in_range(settings.get(key), f"method.{key}", 0, float("inf"), "l")
        experts = dict(settings.get("experts") or {})
        experts.pop("dataset", None)
        experts.pop("model", None)
        p.attempt(lambda: expert_protocol(experts))

    def own_terms(self) -> dict[str, FeatureTerm]:
        """The base method's terms, then covariance and spread."""
        return super().own_terms() | {
            "covariance": CovarianceTerm(self.cov_weight),
            "spread": SpreadTerm(self.spread_weight),
        }

    def setup(self, stage: str) -> None:
        """The base method's setup, the expert pool (trained on first use) and its network."""
        super().setup(stage)
        self.gen_expert = make_generator(self.seed, "expert")
        self.experts = self.expert_pool()
        self.experts.ensure_trained(self.pool, self.device)
        if self.expert is None:
            self.expert = self.experts.net_factory().to(self.device).requires_grad_(False)

    def expert_pool(self):
        """The pool of ``experts.model`` networks on the run's real pool."""
        shape = self.pool.images.shape
        classes = self.pool.num_classes

        def factory() -> nn.Module:
            return build_model(self.expert_model, shape[1], classes, tuple(shape[2:]))

        key = f"{self.experts_dataset}-{len(self.pool)}"
        return pool_for(self.data_dir, key, factory, self.expert_protocol)

    def generators(self) -> dict[str, torch.Generator]:
        """The base method's generators and the one that draws experts."""
        return super().generators() | {"expert": self.gen_expert}

    def extractor(self, net: nn.Module) -> Callable[[Tensor], dict[str, Tensor]]:
        """The final embedding and the last feature map as (channels, positions)."""

        def extract(x: Tensor) -> dict[str, Tensor]:
            last = stage_outputs(net, x)[-1]
            return {EMBED: last.flatten(1), LOCAL: last.flatten(2)}

        return extract

    def syn_extractor(
        self, net: nn.Module, extract: Callable[[Tensor], dict[str, Tensor]]
    ) -> Callable[[Tensor], dict[str, Tensor]]:
        """The real kinds, plus the embedding under an expert drawn for this pass."""
        i = int(torch.randint(self.expert_protocol.num_experts, (), generator=self.gen_expert))
        state = self.experts.state(i, self.expert_protocol.epochs)
        self.expert.load_state_dict({k: v.to(self.device) for k, v in state.items()})
        return lambda x: extract(x) | {EXPERT: self.expert.embed(x)}

    def describe(self) -> dict[str, Any]:
        """The base method's record, the weights and the expert pool."""
        protocol = {"dataset": self.experts_dataset, "model": self.expert_model}
        return super().describe() | {
            "cov_weight": self.cov_weight,
            "spread_weight": self.spread_weight,
            "experts": protocol | self.expert_protocol.__dict__,
        }


class IIDModule(IIDTerms, DistillModule):
    """IID on DM (``method=iid``): DM+IID, and DM+IID+HDD with ``loss=lorentz``."""

    label = "DM+IID"
    class_separable = False  # its expert pool learns from every class (keeps trainer=ddp)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("name", "iid")
        super().__init__(*args, **kwargs)


class IDMIIDModule(IIDTerms, IDMModule):
    """IID on IDM (``method=idm_iid``): IDM+IID, and IDM+IID+HDD with ``loss=lorentz``."""

    label = "IDM+IID"

    def __init__(
        self, *args: Any, cov_weight: float = 0.03, spread_weight: float = 0.01, **kwargs: Any
    ) -> None:
        kwargs.setdefault("name", "idm_iid")  # the IDM script's weights (the DM one's: 0.01, 0.05)
        super().__init__(*args, cov_weight=cov_weight, spread_weight=spread_weight, **kwargs)
