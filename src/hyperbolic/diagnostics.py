"""Geometry diagnostics of one class: levels, centroids and how the centroid weights its samples.

The Lorentzian sum ``a = sum_i w_i x_i`` of points on the hyperboloid is time-like, and with
the unit time-like direction ``c_hat = a / |a|_L`` (``|a|_L = sqrt(-<a, a>_L)``) its length
splits over the samples: ``|a|_L = -<a, c_hat>_L = sum_i w_i (-<x_i, c_hat>_L)``. Every term
is positive, so ``s_i = w_i (-<x_i, c_hat>_L) / |a|_L`` is sample i's share of the sum. With
the centroid ``c = sqrt(k) c_hat``, ``-<x_i, c_hat>_L = sqrt(k) cosh(d(x_i, c) / sqrt(k))``:
a sample's share grows exponentially with its distance to the centroid.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from src.hyperbolic.lorentz import distance_to_origin, lift, lorentz_centroid, lorentz_distance

# Levels (or shares) that differ by less than this, relative to their size, count as one
# value: a rank correlation over them would only rank rounding errors.
TIE_TOLERANCE = 1e-9


def centroid_shares(points: Tensor, k: float = 1.0, weights: Tensor | None = None) -> Tensor:
    """Each point's share ``s_i ∝ w_i cosh(d(x_i, c) / sqrt(k))`` of the Lorentzian sum (sum 1).

    ``points`` (m, n+1) on the hyperboloid, ``c`` their Lorentz centroid with weights ``w``
    (default uniform); computed in log space, so far points do not overflow.
    """
    m = points.shape[-2]
    if weights is None:
        weights = points.new_full((m,), 1.0 / m, dtype=torch.float64)
    weights = weights.to(torch.float64)
    c = lorentz_centroid(points, k, weights)
    t = lorentz_distance(points, c.unsqueeze(-2), k) / k**0.5
    log_cosh = t + torch.nn.functional.softplus(-2.0 * t) - math.log(2.0)
    return torch.softmax(torch.log(weights) + log_cosh, dim=-1)


def effective_sample_size(shares: Tensor) -> Tensor:
    """Kish's effective sample size ``(sum_i s_i)^2 / sum_i s_i^2`` (m for m equal shares)."""
    return shares.sum(-1).square() / shares.square().sum(-1)


def average_ranks(x: Tensor) -> Tensor:
    """Ranks 0..m-1 of a 1-D tensor, tied values sharing their mean rank."""
    values, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts
    return (first + (counts - 1) / 2.0).to(torch.float64)[inverse]


def _collapse_ties(x: Tensor) -> Tensor:
    """``x`` with values closer than TIE_TOLERANCE (relative) to a neighbour made equal."""
    order = torch.argsort(x)
    xs = x[order]
    scale = xs.abs().clamp_min(1.0)
    new_group = torch.cat([xs.new_ones(1, dtype=torch.bool), xs.diff() > TIE_TOLERANCE * scale[1:]])
    groups = torch.cumsum(new_group.long(), 0)
    out = torch.empty_like(groups)
    out[order] = groups
    return out.to(torch.float64)


def spearman(x: Tensor, y: Tensor) -> float | None:
    """Spearman's rank correlation of two 1-D tensors with average ranks for ties.

    None when either side has a single value (up to TIE_TOLERANCE): no ranking exists.
    """
    rx, ry = average_ranks(_collapse_ties(x)), average_ranks(_collapse_ties(y))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = (rx.square().sum() * ry.square().sum()).sqrt()
    if float(denom) == 0.0:
        return None
    return float((rx * ry).sum() / denom)


def class_geometry(
    real: Tensor,
    syn: Tensor,
    k: float = 1.0,
    kind: str = "expmap",
    max_radius: float | None = None,
) -> dict[str, float | None]:
    """Diagnostics of one class from its real (m, D) and synthetic (s, D) features.

    Levels are distances to the origin after ``lift(., k, kind, max_radius)``; the shares are
    ``centroid_shares`` of the real points; ``share_level_spearman`` > 0 means that samples
    far from the origin dominate the real centroid, < 0 that root-near ones do.
    """
    x_real, x_syn = lift(real, k, kind, max_radius), lift(syn, k, kind, max_radius)
    levels = distance_to_origin(x_real, k)
    c_real, c_syn = lorentz_centroid(x_real, k), lorentz_centroid(x_syn, k)
    shares = centroid_shares(x_real, k)
    ess = float(effective_sample_size(shares))
    return {
        "real_level_mean": float(levels.mean()),
        "real_centroid_level": float(distance_to_origin(c_real, k)),
        "syn_centroid_level": float(distance_to_origin(c_syn, k)),
        "centroid_distance": float(lorentz_distance(c_real, c_syn, k)),
        "ess": ess,
        "ess_fraction": ess / len(real),
        "share_level_spearman": spearman(shares, levels),
    }
