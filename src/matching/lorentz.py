"""HDD's loss: geodesic distance between the Lorentz centroids of real and synthetic features."""

from __future__ import annotations

import torch
from torch import Tensor

from src.errors import ConfigError
from src.hyperbolic import feature_centroid, lorentz_distance
from src.matching.base import MatchingLoss


class LorentzCentroidLoss(MatchingLoss):
    """``scale * d_k(centroid(lift(phi(R_c))), centroid(lift(phi(S_c))))`` per class, in float64."""

    name = "lorentz"

    def __init__(self, k: float = 1.0, scale: float = 20.0) -> None:
        super().__init__()
        if not k > 0:
            raise ConfigError(f"loss.k must be > 0, got {k}")
        self.k = float(k)
        self.scale = float(scale)

    def forward(self, real: Tensor, real_weights: Tensor, syn: Tensor) -> Tensor:
        """Per-class scaled geodesic distances between the two centroids, shape (C,).

        Runs in float64 even inside a bf16/fp16 autocast region (the networks' precision).
        """
        with torch.autocast(syn.device.type, enabled=False):
            syn_weights = torch.ones(syn.shape[:-1], dtype=torch.float64, device=syn.device)
            # == lorentz_normalize_sum(lift(x), w, k), in fewer passes over the features.
            real_centroid = feature_centroid(real, real_weights, self.k)
            syn_centroid = feature_centroid(syn, syn_weights, self.k)
            return self.scale * lorentz_distance(real_centroid, syn_centroid, self.k)

    def describe(self) -> dict:
        """Loss name, curvature parameter k and scale."""
        return {"loss": self.name, "k": self.k, "scale": self.scale}
