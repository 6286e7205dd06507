"""HDD's loss: geodesic distance between the Lorentz centroids of real and synthetic features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from src.errors import ConfigError
from src.hyperbolic import check_lift, feature_centroid, lorentz_distance
from src.matching.base import MatchingLoss


class LorentzCentroidLoss(MatchingLoss):
    """``scale * d_k(centroid(lift(phi(R_c))), centroid(lift(phi(S_c))))`` per class, in float64.

    ``lift`` is ``expmap`` (exponential map at the origin; ``max_radius`` caps its radius
    in units of sqrt(k) as the released DM-HDD scripts do, null = exact) or ``project``
    (``(sqrt(k + |v|^2), v)``, the released IDM-HDD CIFAR-100 / TinyImageNet lift).
    """

    name = "lorentz"
    label_suffix = "+HDD"
    reference_node = "hdd"  # the method's released HDD settings (conf/hdd)

    def __init__(
        self,
        k: float = 1.0,
        scale: float = 20.0,
        lift: str = "expmap",
        max_radius: float | None = 10.0,
    ) -> None:
        super().__init__()
        if not k > 0:
            raise ConfigError(f"loss.k must be > 0, got {k}")
        if lift != "expmap":
            max_radius = None  # the cap is the expmap lift's own setting: another lift drops it
        try:
            check_lift(lift, max_radius)
        except ValueError as exc:
            raise ConfigError(f"loss: {exc}") from None
        self.k = float(k)
        self.scale = float(scale)
        self.lift = lift
        self.max_radius = None if max_radius is None else float(max_radius)

    def centroid(self, features: Tensor, weights: Tensor) -> Tensor:
        """Lorentz centroids (C, D+1) of lifted features (C, B, D) with weights (C, B)."""
        return feature_centroid(
            features, weights, self.k, kind=self.lift, max_radius=self.max_radius
        )

    def forward(self, real: Tensor, real_weights: Tensor, syn: Tensor) -> Tensor:
        """Per-class scaled geodesic distances between the two centroids, shape (C,).

        Runs in float64 even inside a bf16/fp16 autocast region (the networks' precision).
        """
        with torch.autocast(syn.device.type, enabled=False):
            syn_weights = torch.ones(syn.shape[:-1], dtype=torch.float64, device=syn.device)
            # == lorentz_normalize_sum(lift(x), w, k), in fewer passes over the features.
            real_centroid = self.centroid(real, real_weights)
            syn_centroid = self.centroid(syn, syn_weights)
            return self.scale * lorentz_distance(real_centroid, syn_centroid, self.k)

    def settings(self) -> dict:
        """Curvature parameter k, scale, lift and its radius cap."""
        return {"k": self.k, "scale": self.scale, "lift": self.lift, "max_radius": self.max_radius}

    def variant(self, reference: Mapping[str, Any] | None = None) -> str:
        """``" (lift[ cap c| exact], k .., scale ..)"`` off the method's released HDD
        settings ``reference``, else ``""``; so runs of a sweep over lifts or k land in
        separate columns of a report."""
        mine = self.settings()
        if reference is None or all(reference.get(key) == v for key, v in mine.items()):
            return ""
        cap = "" if self.max_radius is None else f" cap {self.max_radius:g}"
        if self.lift == "expmap" and self.max_radius is None:
            cap = " exact"
        return f" ({self.lift}{cap}, k {self.k:g}, scale {self.scale:g})"

    def geometry_lift(self) -> dict[str, Any]:
        """This loss's lift: k, kind and radius cap."""
        return {"k": self.k, "kind": self.lift, "max_radius": self.max_radius}
