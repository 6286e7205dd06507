"""Hyperbolic geometry on the Lorentz model: pure functions, no training code."""

from src.hyperbolic.lorentz import (
    LIFTS,
    check_lift,
    distance_to_origin,
    feature_centroid,
    lift,
    lift_radial,
    lorentz_centroid,
    lorentz_distance,
    lorentz_normalize_sum,
    manifold,
    minkowski_inner,
    to_poincare,
)

__all__ = [
    "LIFTS",
    "check_lift",
    "distance_to_origin",
    "feature_centroid",
    "lift",
    "lift_radial",
    "lorentz_centroid",
    "lorentz_distance",
    "lorentz_normalize_sum",
    "manifold",
    "minkowski_inner",
    "to_poincare",
]
