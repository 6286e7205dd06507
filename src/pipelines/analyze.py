"""Geometry views of a saved distilled set."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from src.errors import ConfigError
from src.io.kept import kept_path, load_kept_indices
from src.pipelines.components import load_distilled_with_data, model_factory
from src.pipelines.geometry import render_geometry


def run_analyze(cfg: DictConfig) -> list[Path]:
    """Render the Poincaré-disk plot and the level histogram of ``cfg.distilled``."""
    ds, info, pool = load_distilled_with_data(cfg, train=True)
    classes = list(cfg.classes)
    if not classes or min(classes) < 0 or max(classes) >= info.num_classes:
        raise ConfigError(
            f"classes must be class indices in [0, {info.num_classes}), got {classes}"
        )
    kept = load_kept_indices(kept_path(cfg.distilled))
    # The run's own view; sets made before lifts were recorded used the exact map.
    lift = ds.meta.get("geometry_lift") or {"k": ds.loss.get("k", 1.0), "kind": "expmap"}
    k = float(cfg.k if cfg.k is not None else lift["k"])
    paths = render_geometry(
        Path(cfg.paths.output_dir),
        pool,
        {"distilled": (ds.images, ds.labels)},
        model_factory(cfg.model, info),
        k,
        info.names(),
        classes,
        real_per_class=cfg.real_per_class,
        seed=cfg.seed,
        factor=ds.factor,
        kept=kept,
        lift_kind=str(lift["kind"]),
        max_radius=lift.get("max_radius"),
    )
    for path in paths:
        print(f"wrote {path}")
    return paths
