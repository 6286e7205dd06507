"""Render the geometry views of a synthetic set: Poincaré disk and hierarchy levels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from src.data import RealPool
from src.data.factorize import expand
from src.models import init_weights_
from src.rng import make_generator
from src.viz import save_level_histogram, save_poincare_plot


def embedded_sample(
    net: nn.Module, pool: RealPool, per_class: int, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Features and labels of ``per_class`` random images of every class of ``pool``."""
    idx = pool.random_per_class(min(per_class, pool.min_class_count()), gen)
    return net.embed(pool.get(idx).cpu()), pool.labels.cpu()[idx.flatten()]


@torch.no_grad()
def render_geometry(
    out_dir: Path,
    pool: RealPool,
    syn_sets: dict[str, tuple[Tensor, Tensor]],
    net_factory: Callable[[], nn.Module],
    k: float,
    class_names: list[str],
    classes: list[int],
    real_per_class: int = 300,
    seed: int = 0,
    factor: int = 1,
    kept: Tensor | None = None,
    real_name: str = "real",
    lift_kind: str = "expmap",
    max_radius: float | None = None,
) -> list[Path]:
    """Write ``poincare_<name>.png`` per synthetic set and ``levels.png``; returns the paths.

    One random network (seeded) embeds a random sample of real images per class, the
    kept pool's sample when pruning ran, and every synthetic set; all are lifted with
    ``lift(., k, lift_kind, max_radius)``.
    """
    net = init_weights_(net_factory(), make_generator(seed, "geometry")).eval()
    gen = make_generator(seed, "geometry-sample")
    real_feat, real_labels = embedded_sample(net, pool, real_per_class, gen)
    levels = {real_name: real_feat}
    if kept is not None:
        levels["kept"] = embedded_sample(net, pool.subset(kept), real_per_class, gen)[0]
    shown = torch.isin(real_labels, torch.tensor(classes))
    paths = []
    cap_text = "" if max_radius is None else f" capped at {max_radius:g} sqrt(k)"
    for name, (images, labels) in syn_sets.items():
        images, labels = expand(images, labels, factor)
        syn_feat = net.embed(images)
        levels[f"synthetic ({name})"] = syn_feat
        syn_shown = torch.isin(labels, torch.tensor(classes))
        paths.append(
            save_poincare_plot(
                out_dir / f"poincare_{name}.png",
                real_feat[shown],
                real_labels[shown],
                syn_feat[syn_shown],
                labels[syn_shown],
                k,
                class_names,
                title=f"{name}: real vs synthetic ({lift_kind}{cap_text}, k = {k})",
                lift_kind=lift_kind,
                max_radius=max_radius,
            )  # fmt: skip
        )
    paths.append(save_level_histogram(out_dir / "levels.png", levels, k, lift_kind, max_radius))
    return paths
