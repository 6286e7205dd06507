"""Lorentz (hyperboloid) model of hyperbolic space, on top of ``geoopt.manifolds.Lorentz``.

Convention (geoopt's): for k > 0 the manifold is
``H = {x in R^(n+1) : <x, x>_L = -k, x0 > 0}`` with the Minkowski product
``<x, y>_L = -x0*y0 + sum_i xi*yi`` and origin ``o = (sqrt(k), 0, ..., 0)``.

Everything is computed in float64. Even so, the textbook formulas lose all
precision for lifted ConvNet features: a feature of norm 25 becomes a point
with coordinates ~ e^25 / 2, so ``<x, x>_L`` is the difference of two numbers
near 1e21 and float64 leaves an error of ~1e5 where the answer is -k. The
distance and the centroid normaliser below are therefore written in forms
that never subtract two such numbers (see each docstring); they agree with
the textbook formulas wherever those are accurate (tests/test_hyperbolic.py).
"""

from __future__ import annotations

import functools
import warnings

import torch

with warnings.catch_warnings():
    # geoopt decorates its math with torch.jit.script, deprecated in recent torch.
    warnings.simplefilter("ignore", FutureWarning)
    import geoopt
from torch import Tensor

# Clamp of docs/method.md §3.3 for the square root in the centroid normaliser.
CENTROID_EPS = 1e-8
# Keeps sqrt's gradient finite at a zero argument (identical points, zero features).
_TINY = 1e-30


@functools.lru_cache(maxsize=32)
def manifold(k: float, device: str = "cpu") -> geoopt.manifolds.Lorentz:
    """The geoopt Lorentz manifold with parameter ``k`` in float64 (cached per device)."""
    if not k > 0:
        raise ValueError(f"the Lorentz parameter k must be > 0, got {k}")
    return geoopt.manifolds.Lorentz(k=torch.tensor(float(k), dtype=torch.float64, device=device))


def _manifold_for(k: float, like: Tensor) -> geoopt.manifolds.Lorentz:
    return manifold(float(k), str(like.device))


def _safe_norm(v: Tensor) -> Tensor:
    """Euclidean norm over the last dimension with a finite gradient at zero."""
    # One fused pass (a pow-then-sum takes about five times as long on a CPU); the norm's
    # gradient at zero is 0 and the clamp keeps the divisions that follow finite.
    return torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(_TINY**0.5)


def minkowski_inner(x: Tensor, y: Tensor, keepdim: bool = False) -> Tensor:
    """Minkowski product ``<x, y>_L = -x0*y0 + sum_i xi*yi`` (geoopt's, textbook form)."""
    return geoopt.manifolds.lorentz.math.inner(x, y, keepdim=keepdim, dim=-1)


LIFTS = ("expmap", "project")


def check_lift(kind: str, max_radius: float | None) -> None:
    """Raise ValueError unless ``kind`` is a known lift and ``max_radius`` fits it."""
    if kind not in LIFTS:
        raise ValueError(f"unknown lift '{kind}'; choose one of: {', '.join(LIFTS)}")
    if max_radius is not None and kind != "expmap":
        raise ValueError(f"max_radius caps the expmap lift only; lift={kind} needs null")
    if max_radius is not None and not max_radius > 0:
        raise ValueError(f"max_radius must be > 0 (or null for the exact map), got {max_radius}")


def lift_radial(
    rho: Tensor, k: float = 1.0, kind: str = "expmap", max_radius: float | None = None
) -> tuple[Tensor, Tensor]:
    """Time part ``x0`` and space norm ``|x_{1:}|`` of the lift of a feature of norm ``rho``.

    - ``expmap``: ``(sqrt(k) cosh(r), sqrt(k) sinh(r))`` with ``r = rho / sqrt(k)``, or with
      ``r = min(rho / sqrt(k), max_radius)`` when capped; the clamp passes no gradient to
      rho beyond the cap (the released scripts' geoopt copy caps at 10).
    - ``project``: ``(sqrt(k + rho^2), rho)``, i.e. projx of ``(0, v)`` without the map.
    The space part points along ``v / |v|`` in both.
    """
    check_lift(kind, max_radius)
    sk = k**0.5
    if kind == "project":
        return (k + rho.square()).sqrt(), rho
    r = rho / sk
    if max_radius is not None:
        r = r.clamp_max(float(max_radius))
    return sk * torch.cosh(r), sk * torch.sinh(r)


def lift(
    features: Tensor, k: float = 1.0, kind: str = "expmap", max_radius: float | None = None
) -> Tensor:
    """Lift Euclidean features onto the hyperboloid, in float64.

    ``expmap`` exact: ``projx(expmap0((0, v)))`` with geoopt, i.e.
    ``(sqrt(k) cosh(|v|/sqrt(k)), sqrt(k) sinh(|v|/sqrt(k)) v/|v|)``; capped: the same with
    ``|v|/sqrt(k)`` clamped at ``max_radius`` (``lift_radial``), then projx; ``project``:
    geoopt's ``projx((0, v)) = (sqrt(k + |v|^2), v)``.
    """
    check_lift(kind, max_radius)
    v = features.to(torch.float64)
    m = _manifold_for(k, v)
    if kind == "project":
        return m.projx(torch.nn.functional.pad(v, (1, 0)))
    if max_radius is None:
        u = torch.nn.functional.pad(v, (1, 0))  # tangent vector at the origin: time part 0
        return m.projx(m.expmap0(u))
    rho = _safe_norm(v)
    x0, space = lift_radial(rho, k, kind, max_radius)
    return m.projx(torch.cat([x0, space * v / rho], dim=-1))


def distance_to_origin(x: Tensor, k: float = 1.0) -> Tensor:
    """Geodesic distance to the origin ``r = sqrt(k) asinh(|x_{1:}| / sqrt(k))`` ("level").

    Equal to ``sqrt(k) arcosh(x0 / sqrt(k))`` on the manifold, but exact near the origin.
    """
    sk = k**0.5
    return sk * torch.asinh(_safe_norm(x.to(torch.float64)[..., 1:]).squeeze(-1) / sk)


def lorentz_distance(x: Tensor, y: Tensor, k: float = 1.0) -> Tensor:
    """Geodesic distance ``d(x, y) = sqrt(k) arcosh(-<x, y>_L / k)``, in a cancellation-free form.

    With polar coordinates ``x_{1:} = sqrt(k) sinh(r_x / sqrt(k)) e_x`` (|e_x| = 1),
    ``-<x, y>_L / k - 1 = 2 sinh^2((r_x - r_y) / (2 sqrt(k)))
    + |x_{1:}| |y_{1:}| |e_x - e_y|^2 / (2k) =: delta >= 0`` and
    ``d = sqrt(k) log1p(delta + sqrt(delta (delta + 2)))``.
    Only the space part of each point is read (the time part is implied by it).
    """
    sk = k**0.5
    xs = x.to(torch.float64)[..., 1:]
    ys = y.to(torch.float64)[..., 1:]
    nx, ny = _safe_norm(xs), _safe_norm(ys)
    radial = 2.0 * torch.sinh((torch.asinh(nx / sk) - torch.asinh(ny / sk)) / 2.0).pow(2)
    angular = nx * ny * (xs / nx - ys / ny).pow(2).sum(dim=-1, keepdim=True) / (2.0 * k)
    delta = (radial + angular).squeeze(-1)
    return sk * torch.log1p(delta + (delta * (delta + 2.0)).clamp_min(_TINY).sqrt())


def _normalized_sum(
    w: Tensor, x0: Tensor, space_norm: Tensor, direction: Tensor, k: float, eps: float
) -> Tensor:
    """``sqrt(k) a / sqrt(|<a, a>_L|)`` for ``a = sum_i w_i x_i`` given in polar form.

    ``x_i = (x0_i, space_norm_i * direction_i)`` on the manifold; ``w`` (..., m, 1) >= 0.
    ``-<a, a>_L = (a0 - |a_s|)(a0 + |a_s|)`` with ``p_i = w_i |v_i|``, ``P = sum p_i`` and
    ``e = sum (p_i / P) e_i``:
    ``a0 - |a_s| = sum_i w_i k / (x0_i + |v_i|) + sum_i p_i |e_i - e|^2 / (1 + |e|)``,
    a sum of non-negative terms, so the centroid of one point is that point to float64
    precision however far it lies from the origin. (The weights are normalised before the
    mean direction is formed: a single point gets weight exactly 1, so its spread is 0.)
    """
    p = w * space_norm
    total = p.sum(dim=-2, keepdim=True).clamp_min(_TINY)
    # The two (..., m, n) reductions are a matrix product and a distance kernel: one pass
    # each over the directions and no (..., m, n) temporaries (the hot path of the loss).
    e_mean = (p / total).transpose(-1, -2) @ direction
    e_mean_norm = _safe_norm(e_mean)
    dev = torch.cdist(direction, e_mean, compute_mode="donot_use_mm_for_euclid_dist")
    spread = (p * dev.square()).sum(dim=-2, keepdim=True)
    gap = (w * k / (x0 + space_norm)).sum(dim=-2, keepdim=True) + spread / (1.0 + e_mean_norm)
    a0 = (w * x0).sum(dim=-2, keepdim=True)
    norm = (gap * (a0 + total * e_mean_norm)).clamp_min(eps).sqrt()
    return (k**0.5 * torch.cat([a0, total * e_mean], dim=-1) / norm).squeeze(-2)


def lorentz_normalize_sum(
    points: Tensor, weights: Tensor, k: float = 1.0, eps: float = CENTROID_EPS
) -> Tensor:
    """Project ``a = sum_i w_i x_i`` back onto the hyperboloid: ``sqrt(k) a / sqrt(|<a, a>_L|)``.

    ``points`` (..., m, n+1) lie on the manifold, ``weights`` (..., m) are >= 0; the
    normaliser is computed without cancellation (``_normalized_sum``).
    """
    x = points.to(torch.float64)
    x0, v = x[..., :1], x[..., 1:]
    nv = _safe_norm(v)
    return _normalized_sum(weights.to(torch.float64).unsqueeze(-1), x0, nv, v / nv, k, eps)


def feature_centroid(
    features: Tensor,
    weights: Tensor,
    k: float = 1.0,
    eps: float = CENTROID_EPS,
    kind: str = "expmap",
    max_radius: float | None = None,
) -> Tensor:
    """``lorentz_normalize_sum(lift(features, k, kind, max_radius), weights, k)``, unbuilt.

    A lifted point is ``(x0(rho_i), s(rho_i) f_i / rho_i)`` with ``rho_i = |f_i|`` and
    ``(x0, s) = lift_radial(rho_i)``: its polar form needs only per-sample scalars and the
    directions, a few passes over the features instead of one per step of lift, projection
    and normalisation.
    """
    f = features.to(torch.float64)
    rho = _safe_norm(f)  # (..., m, 1)
    direction = f / rho
    w = weights.to(torch.float64).unsqueeze(-1)
    x0, space_norm = lift_radial(rho, k, kind, max_radius)
    return _normalized_sum(w, x0, space_norm, direction, k, eps)


def lorentz_centroid(points: Tensor, k: float = 1.0, weights: Tensor | None = None) -> Tensor:
    """Lorentzian centroid ``sqrt(k) a / sqrt(|<a, a>_L|)`` with ``a = sum_i w_i x_i``.

    ``points`` (..., m, n+1); ``weights`` (..., m) non-negative, default uniform ``1/m``
    (the result does not depend on their overall scale).
    """
    if weights is None:
        weights = points.new_full(points.shape[:-1], 1.0 / points.shape[-2])
    elif bool((weights < 0).any()):
        raise ValueError("centroid weights must be non-negative")
    return lorentz_normalize_sum(points, weights, k)


def to_poincare(x: Tensor, k: float = 1.0) -> Tensor:
    """Hyperboloid -> Poincaré ball of radius sqrt(k): ``x_{1:} / (1 + x0 / sqrt(k))``."""
    x = x.to(torch.float64)
    return x[..., 1:] / (1.0 + x[..., :1] / k**0.5)
