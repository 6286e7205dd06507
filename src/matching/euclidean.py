"""DM's Euclidean mean matching: ``|mean(phi(R_c)) - mean(phi(S_c))|^2``."""

from __future__ import annotations

import torch
from torch import Tensor

from src.matching.base import MatchingLoss


class EuclideanMeanLoss(MatchingLoss):
    """Squared distance between the (weighted) real mean and the synthetic mean of a class."""

    name = "euclidean"

    def forward(self, real: Tensor, real_weights: Tensor, syn: Tensor) -> Tensor:
        """Per-class ``|sum_i w_i r_i / sum_i w_i - mean_j s_j|^2``, shape (C,).

        Reduced in at least float32, also when the networks run in bf16/fp16.
        """
        with torch.autocast(syn.device.type, enabled=False):
            dtype = torch.promote_types(real.dtype, torch.float32)
            real, syn = real.to(dtype), syn.to(dtype)
            w = real_weights.to(dtype).unsqueeze(-1)
            real_mean = (w * real).sum(dim=1) / w.sum(dim=1)
            return (real_mean - syn.mean(dim=1)).pow(2).sum(dim=-1)
