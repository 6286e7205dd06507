"""DM's Euclidean mean matching: ``|mean(phi(R_c)) - mean(phi(S_c))|^2``."""

from __future__ import annotations

from torch import Tensor

from src.matching.base import MatchingLoss


class EuclideanMeanLoss(MatchingLoss):
    """Squared distance between the (weighted) real mean and the synthetic mean of a class."""

    name = "euclidean"

    def forward(self, real: Tensor, real_weights: Tensor, syn: Tensor) -> Tensor:
        """Per-class ``|sum_i w_i r_i / sum_i w_i - mean_j s_j|^2``, shape (C,)."""
        w = real_weights.to(real.dtype).unsqueeze(-1)
        real_mean = (w * real).sum(dim=1) / w.sum(dim=1)
        return (real_mean - syn.mean(dim=1)).pow(2).sum(dim=-1)
