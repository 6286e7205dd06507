"""Pictures of the hyperbolic geometry: Poincaré-disk scatter and hierarchy-level histograms."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from src.hyperbolic import (  # noqa: E402
    distance_to_origin,
    lift,
    lorentz_centroid,
    manifold,
    to_poincare,  # noqa: E402
)
from src.io.atomic import atomic_path  # noqa: E402


def poincare_2d(points: Tensor, k: float) -> Tensor:
    """2-D Poincaré-disk coordinates of hyperboloid points via tangent PCA at their centroid.

    Points are mapped to the tangent space at their Lorentz centroid (logmap), moved to
    the origin (parallel transport), reduced to their two principal directions, and
    mapped back (expmap0) into the hyperbolic plane. Distances to the centroid are kept.
    """
    m = manifold(float(k), str(points.device))
    centroid = lorentz_centroid(points, k)
    tangent = m.transp0back(
        centroid.expand_as(points), m.logmap(centroid.expand_as(points), points)
    )
    v = torch.nan_to_num(tangent[:, 1:])
    centered = v - v.mean(0)
    _, _, basis = torch.linalg.svd(centered, full_matrices=False)
    coords = v @ basis[:2].T
    # Scale the 2-D vectors to keep each point's distance to the centroid exactly.
    norms = v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    coords = coords / coords.norm(dim=1, keepdim=True).clamp_min(1e-12) * norms
    return to_poincare(lift(coords, k), k) / k**0.5  # unit disk


def _save(fig: plt.Figure, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def save_poincare_plot(
    path: str | Path,
    real: Tensor,
    real_labels: Tensor,
    syn: Tensor,
    syn_labels: Tensor,
    k: float,
    class_names: list[str],
    title: str = "",
    lift_kind: str = "expmap",
    max_radius: float | None = None,
) -> Path:
    """Real (dots) and synthetic (stars) features of some classes on the Poincaré disk.

    Both sets are lifted with ``lift(., k, lift_kind, max_radius)``; each class's real and
    synthetic Lorentz centroids are marked (black ring, black cross).
    """
    x_real, x_syn = lift(real, k, lift_kind, max_radius), lift(syn, k, lift_kind, max_radius)
    classes = sorted(set(real_labels.tolist()))
    centroids = [lorentz_centroid(x_real[real_labels == c], k) for c in classes]
    centroids += [lorentz_centroid(x_syn[syn_labels == c], k) for c in classes]
    disk = poincare_2d(torch.cat([x_real, x_syn, torch.stack(centroids)]), k)
    d_real, d_syn = disk[: len(real)], disk[len(real) : len(real) + len(syn)]
    d_cent = disk[len(real) + len(syn) :]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="gray", lw=1))
    colors = plt.get_cmap("tab10")
    for i, c in enumerate(classes):
        color = colors(i % 10)
        r = d_real[real_labels == c]
        s = d_syn[syn_labels == c]
        ax.scatter(r[:, 0], r[:, 1], s=6, alpha=0.35, color=color, label=f"{class_names[c]} real")
        ax.scatter(s[:, 0], s[:, 1], s=90, marker="*", edgecolor="black", color=color,
                   label=f"{class_names[c]} synthetic")  # fmt: skip
        ax.scatter(*d_cent[i], s=120, facecolor="none", edgecolor="black", lw=2)
        ax.scatter(*d_cent[len(classes) + i], s=120, marker="x", color="black", lw=2)
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.set_title(title or f"Poincaré disk (k = {k}); ring: real centroid, x: synthetic centroid")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def save_level_histogram(
    path: str | Path,
    groups: dict[str, Tensor],
    k: float,
    lift_kind: str = "expmap",
    max_radius: float | None = None,
) -> Path:
    """Histograms of the distance to the origin ("hierarchy level") of lifted feature sets."""
    fig, ax = plt.subplots(figsize=(6, 4))
    levels = {
        name: distance_to_origin(lift(f, k, lift_kind, max_radius), k)
        for name, f in groups.items()
        if len(f)
    }
    lo = min(float(v.min()) for v in levels.values())
    hi = max(float(v.max()) for v in levels.values())
    # A capped lift puts every point at one level: widen the range so no bin has zero width
    # (float64 bins: at a level of 10, float32 cannot tell 10 from 10 + 1e-6).
    pad = max(1e-3 * max(1.0, abs(hi)), 1e-6)
    bins = torch.linspace(lo - pad, hi + pad, 41, dtype=torch.float64).tolist()
    for name, v in levels.items():
        ax.hist(v.tolist(), bins=bins, density=True, alpha=0.5, label=f"{name} (n={len(v)})")
    ax.set_xlabel(f"distance to the origin (k = {k})")
    ax.set_ylabel("density")
    ax.legend()
    return _save(fig, path)
