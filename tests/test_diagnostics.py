"""Geometry diagnostics against constructed point sets with known answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from src.hyperbolic import lift
from src.hyperbolic.diagnostics import (
    average_ranks,
    centroid_shares,
    class_geometry,
    effective_sample_size,
    spearman,
)
from tests.helpers import TINY, compose_cfg


def _axis(n: int, i: int) -> torch.Tensor:
    e = torch.zeros(n, dtype=torch.float64)
    e[i] = 1.0
    return e


def _two_shells(r1: float, r2: float, pairs: int = 3, n: int = 8) -> torch.Tensor:
    """``pairs`` antipodal pairs at norm r1 on axes 0.., and as many at r2 on other axes."""
    feats = []
    for j in range(pairs):
        feats += [r1 * _axis(n, j), -r1 * _axis(n, j)]
        feats += [r2 * _axis(n, pairs + j), -r2 * _axis(n, pairs + j)]
    return torch.stack(feats)


@pytest.mark.parametrize("k", [1.0, 2.4])
def test_two_shells_have_closed_form_levels_shares_and_ess(k):
    r1, r2 = 1.5, 4.0
    feats = _two_shells(r1, r2)
    diag = class_geometry(feats, feats[:1], k, "expmap", None)
    # Antipodal pairs: the centroid is the origin, so each share is proportional to
    # cosh(level / sqrt(k)) and the rank correlation of share with level is exactly +1.
    sk = math.sqrt(k)
    c1, c2 = math.cosh(r1 / sk), math.cosh(r2 / sk)
    m = len(feats)
    assert diag["real_level_mean"] == pytest.approx((r1 + r2) / 2, rel=1e-12)
    assert diag["real_centroid_level"] == pytest.approx(0.0, abs=1e-7)
    shares = centroid_shares(lift(feats, k), k)
    expected = torch.tensor([c1, c1, c2, c2] * 3, dtype=torch.float64) / (m / 2 * (c1 + c2))
    torch.testing.assert_close(shares, expected, rtol=1e-9, atol=0)
    ess = (m / 2 * (c1 + c2)) ** 2 / (m / 2 * (c1**2 + c2**2))
    assert diag["ess"] == pytest.approx(ess, rel=1e-9)
    assert diag["ess_fraction"] == pytest.approx(ess / m, rel=1e-9)
    assert diag["share_level_spearman"] == pytest.approx(1.0, abs=1e-12)
    # The synthetic set is one sample of level r1; the centroids are r1 apart.
    assert diag["syn_centroid_level"] == pytest.approx(r1, rel=1e-12)
    assert diag["centroid_distance"] == pytest.approx(r1, rel=1e-7)


def test_a_root_sample_far_from_a_tight_cluster_dominates_it():
    # n samples at level R on one ray plus one at the origin (k = 1): the centroid lies on
    # the ray near the cluster, so the root sample is the far one and holds the largest share.
    n, R = 9, 3.0
    e = _axis(6, 0)
    feats = torch.cat([torch.zeros(1, 6, dtype=torch.float64), (R * e).expand(n, 6)])
    diag = class_geometry(feats, feats[1:2], 1.0, "expmap", None)
    a0, a1 = (1 + n * math.cosh(R)) / (n + 1), n * math.sinh(R) / (n + 1)
    level = math.asinh(a1 / math.sqrt(a0**2 - a1**2))
    assert diag["real_centroid_level"] == pytest.approx(level, rel=1e-12)
    assert diag["share_level_spearman"] == pytest.approx(-1.0, abs=1e-12)
    shares = centroid_shares(lift(feats, 1.0), 1.0)
    ratio = math.cosh(level) / math.cosh(R - level)
    assert (shares[0] / shares[1]).item() == pytest.approx(ratio, rel=1e-9)
    assert diag["centroid_distance"] == pytest.approx(R - level, rel=1e-9)


def test_capped_lift_puts_every_far_sample_on_one_level():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(40, 64, generator=g, dtype=torch.float64)
    feats = 25.0 * feats / feats.norm(dim=-1, keepdim=True)
    diag = class_geometry(feats, feats[:1], 1.0, "expmap", 10.0)
    assert diag["real_level_mean"] == pytest.approx(10.0, rel=1e-12)
    assert diag["syn_centroid_level"] == pytest.approx(10.0, rel=1e-12)
    assert diag["share_level_spearman"] is None  # one level: no ranking exists
    exact = class_geometry(feats, feats[:1], 1.0, "expmap", None)
    assert exact["real_level_mean"] == pytest.approx(25.0, rel=1e-12)


def test_equal_shares_have_full_effective_sample_size_and_one_share_has_one():
    assert effective_sample_size(torch.full((7,), 1 / 7)).item() == pytest.approx(7.0)
    assert effective_sample_size(torch.tensor([1.0, 0.0, 0.0])).item() == pytest.approx(1.0)


def test_spearman_with_ties_matches_pearson_of_average_ranks():
    x = torch.tensor([1.0, 2.0, 2.0, 3.0])
    y = torch.tensor([1.0, 3.0, 2.0, 4.0])
    torch.testing.assert_close(average_ranks(x), torch.tensor([0.0, 1.5, 1.5, 3.0]).double())
    assert spearman(x, y) == pytest.approx(4.5 / math.sqrt(4.5 * 5.0), rel=1e-12)
    assert spearman(x, -y) == pytest.approx(-4.5 / math.sqrt(4.5 * 5.0), rel=1e-12)
    assert spearman(torch.ones(4), y) is None


def test_a_run_records_diagnostics_in_results_and_logs(tmp_path):
    from src.pipelines.distill import run_distill

    out = tmp_path / "run"
    cfg = compose_cfg(
        "distill",
        [*TINY, "logger=csv", "geometry.enabled=false", "geometry.every=2",
         "geometry.real_per_class=20", "eval.final=false", "eval.random_baseline=false",
         f"paths.output_dir={out}"],
    )  # fmt: skip
    results = run_distill(cfg)
    saved = json.loads((out / "results.json").read_text())
    geometry = saved["geometry"]
    assert geometry == json.loads(json.dumps(results["geometry"]))
    assert geometry["lift"] == {"k": 1.0, "kind": "expmap", "max_radius": 10.0}
    assert sorted(geometry["history"], key=int) == ["0", "2", "3"]  # start, every 2, end
    assert geometry["start"]["iteration"] == 0 and geometry["end"]["iteration"] == 3
    assert len(geometry["end"]["classes"]["centroid_distance"]) == 10
    header = next((out / "csv").rglob("metrics.csv")).read_text().splitlines()[0]
    assert "geometry/centroid_distance" in header and "geometry/c0/ess_fraction" in header


def test_diagnostics_do_not_change_the_distilled_set(tmp_path):
    from src.io import load_distilled
    from src.pipelines.distill import run_distill

    sets = []
    for flag in ("true", "false"):
        out = tmp_path / flag
        cfg = compose_cfg(
            "distill",
            [*TINY, "geometry.enabled=false", f"geometry.diagnostics={flag}",
             "geometry.real_per_class=10", "eval.final=false", "eval.random_baseline=false",
             f"paths.output_dir={out}"],
        )  # fmt: skip
        results = run_distill(cfg)
        assert ("geometry" in results) is (flag == "true")
        sets.append(load_distilled(out / "distilled.safetensors").images)
    assert torch.equal(sets[0], sets[1])
