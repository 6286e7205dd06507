"""Poincaré-disk reduction and the pictures written by runs and by src.analyze."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import torch

from src.hyperbolic import lift, lorentz_centroid, lorentz_distance
from src.pipelines.analyze import run_analyze
from src.pipelines.distill import run_distill
from src.viz import poincare_2d
from tests.helpers import TINY, compose_cfg


def _nonempty_png(path) -> None:
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # not a blank canvas


def test_poincare_reduction_keeps_distances_to_the_centroid_and_stays_in_the_disk():
    g = torch.Generator().manual_seed(0)
    x = lift(torch.randn(40, 12, generator=g, dtype=torch.float64), 1.0)
    disk = poincare_2d(x, 1.0)
    assert disk.shape == (40, 2) and (disk.norm(dim=1) < 1).all()
    # In the unit disk, d(0, p) = 2 artanh(|p|): equal to the distance to the centroid.
    c = lorentz_centroid(x, 1.0)
    expected = lorentz_distance(x, c.expand_as(x), 1.0)
    torch.testing.assert_close(2 * torch.atanh(disk.norm(dim=1)), expected, rtol=1e-6, atol=1e-6)
    # Points on one geodesic through the centroid stay on one diameter of the disk.
    e = torch.zeros(12, dtype=torch.float64)
    e[0] = 1.0
    line = lift(torch.stack([t * e for t in (-2.0, -1.0, 1.0, 2.0)]), 1.0)
    p = poincare_2d(line, 1.0)
    angles = torch.atan2(p[:, 1], p[:, 0])
    assert math.isclose(abs(float(angles[0] - angles[3])), math.pi, abs_tol=1e-6)


def test_distill_and_analyze_write_the_geometry_pictures(tmp_path):
    cfg = compose_cfg(
        "distill",
        [*TINY, "prune=random", "prune.keep_ratio=0.2", "eval.final=false",
         "eval.random_baseline=false", "geometry.real_per_class=50",
         f"paths.output_dir={tmp_path / 'run'}"],
    )  # fmt: skip
    run_distill(cfg)
    for name in ("poincare_before.png", "poincare_after.png", "levels.png"):
        _nonempty_png(tmp_path / "run" / name)
    paths = run_analyze(
        compose_cfg(
            "analyze",
            [
                f"distilled={tmp_path / 'run' / 'distilled.safetensors'}",
                "model.width=8",
                "real_per_class=50",
                "classes=[0,5]",
                f"paths.output_dir={tmp_path / 'an'}",
            ],
        )  # fmt: skip
    )
    assert sorted(p.name for p in paths) == ["levels.png", "poincare_distilled.png"]
    for path in paths:
        _nonempty_png(path)


def test_a_capped_lifts_level_histogram_draws_without_numpy_warnings(tmp_path):
    import warnings

    from src.viz.geometry import save_level_histogram

    far = {"real": torch.randn(50, 16) * 30, "synthetic": torch.randn(5, 16) * 30}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in divide" fails
        save_level_histogram(tmp_path / "levels.png", far, 1.0, "expmap", 10.0)
    assert (tmp_path / "levels.png").stat().st_size > 0
