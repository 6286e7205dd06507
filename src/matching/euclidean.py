"""DM's Euclidean mean matching: ``|mean(phi(R_c)) - mean(phi(S_c))|^2``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from src.matching.base import MatchingLoss


class EuclideanMeanLoss(MatchingLoss):
    """Squared distance between the (weighted) real mean and the synthetic mean of a class.

    ``squared=False`` and a ``scale`` give ``scale * |mean_r - mean_s|``, the limit of HDD's
    loss as k grows (the hyperboloid flattens and the centroids become the means): the
    control that tells HDD's curvature from its unsquared distance (``loss=euclidean_unsquared``).
    """

    name = "euclidean"

    def __init__(self, squared: bool = True, scale: float = 1.0) -> None:
        super().__init__()
        self.squared = bool(squared)
        self.scale = float(scale)

    def forward(self, real: Tensor, real_weights: Tensor, syn: Tensor) -> Tensor:
        """Per-class ``scale * |sum_i w_i r_i / sum_i w_i - mean_j s_j|^p`` (p 2, or 1 when
        not squared), shape (C,). Reduced in at least float32, also under bf16/fp16 autocast.
        """
        with torch.autocast(syn.device.type, enabled=False):
            dtype = torch.promote_types(real.dtype, torch.float32)
            real, syn = real.to(dtype), syn.to(dtype)
            w = real_weights.to(dtype).unsqueeze(-1)
            real_mean = (w * real).sum(dim=1) / w.sum(dim=1)
            squared = (real_mean - syn.mean(dim=1)).pow(2).sum(dim=-1)
            distance = squared if self.squared else squared.sqrt()
            return distance if self.scale == 1.0 else self.scale * distance

    def settings(self) -> dict:
        """Whether the distance is squared, and its scale."""
        return {"squared": self.squared, "scale": self.scale}

    def variant(self, reference: Mapping[str, Any] | None = None) -> str:
        """``" (unsquared, scale 20)"`` off DM's default (squared, scale 1), else ``""``."""
        if (self.squared, self.scale) == (True, 1.0):
            return ""
        return f" ({'squared' if self.squared else 'unsquared'}, scale {self.scale:g})"
