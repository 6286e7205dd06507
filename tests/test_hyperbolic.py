"""The Lorentz geometry against closed forms and against geoopt."""

import math

import pytest
import torch

from src.hyperbolic import (
    distance_to_origin,
    feature_centroid,
    lift,
    lorentz_centroid,
    lorentz_distance,
    lorentz_normalize_sum,
    manifold,
    minkowski_inner,
    to_poincare,
)

KS = [0.5, 1.0, 2.4]


def _unit(n: int, seed: int) -> torch.Tensor:
    v = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return v / v.norm()


def _features(m: int, n: int, norm: float, seed: int = 0) -> torch.Tensor:
    v = torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return norm * v / v.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("k", KS)
def test_lift_matches_closed_form_and_lies_on_hyperboloid(k):
    v = _features(8, 16, 2.0)
    x = lift(v, k)
    r = v.norm(dim=-1, keepdim=True)
    sk = math.sqrt(k)
    expected = torch.cat([sk * torch.cosh(r / sk), sk * torch.sinh(r / sk) * v / r], dim=-1)
    torch.testing.assert_close(x, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(minkowski_inner(x, x), torch.full((8,), -k, dtype=torch.float64))
    assert x.dtype == torch.float64


def test_lift_on_hyperboloid_for_far_points_to_float64_precision():
    # For norm 25 the coordinates are ~e^25, so <x,x>_L = -k holds only relative to x0^2.
    x = lift(_features(4, 2048, 25.0).float(), 1.0)
    rel = (minkowski_inner(x, x) + 1.0).abs() / x[:, 0] ** 2
    assert rel.max() < 1e-14


@pytest.mark.parametrize("k", KS)
def test_distance_agrees_with_geoopt_where_geoopt_is_accurate(k):
    x = lift(_features(16, 32, 1.5, seed=1) * torch.rand(16, 1, dtype=torch.float64), k)
    y = lift(_features(16, 32, 2.0, seed=2), k)
    expected = manifold(k).dist(x, y)
    torch.testing.assert_close(lorentz_distance(x, y, k), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("radius", [0.1, 5.0, 20.0])
def test_distance_closed_forms(k, radius):
    # radius is in units of sqrt(k). Beyond ~20 a float64 point cannot resolve its own
    # direction finely enough for these 1e-9 checks: one ulp of angle at radius r spans a
    # geodesic distance of ~2 sqrt(k) asinh(sinh(r) 2^-52), the representation's limit.
    norm = radius * math.sqrt(k)
    e, f = _unit(64, 3), _unit(64, 4)
    # Same ray: d = |a - b|.  Opposite rays: d = a + b.  Itself: 0.  To the origin: a.
    a, b = norm, 0.6 * norm
    xa, xb = lift(a * e, k), lift(b * e, k)
    assert lorentz_distance(xa, xb, k).item() == pytest.approx(a - b, rel=1e-9)
    assert lorentz_distance(xa, lift(-b * e, k), k).item() == pytest.approx(a + b, rel=1e-9)
    assert lorentz_distance(xa, xa, k).item() == pytest.approx(0.0, abs=1e-10)
    assert distance_to_origin(xa, k).item() == pytest.approx(a, rel=1e-12)
    # Symmetry for unrelated points.
    xf = lift(0.8 * norm * f, k)
    assert lorentz_distance(xa, xf, k).item() == pytest.approx(
        lorentz_distance(xf, xa, k).item(), rel=1e-12
    )


def test_distance_hyperbolic_law_of_cosines():
    # cosh(d / sqrt(k)) = cosh(a') cosh(b') - sinh(a') sinh(b') cos(theta), a' = a / sqrt(k).
    k, a, b, theta = 2.4, 1.3, 0.7, 1.1
    e1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    e2 = torch.tensor([math.cos(theta), math.sin(theta)], dtype=torch.float64)
    d = lorentz_distance(lift(a * e1, k), lift(b * e2, k), k).item()
    sa, sb = a / math.sqrt(k), b / math.sqrt(k)
    cosh_d = math.cosh(sa) * math.cosh(sb) - math.sinh(sa) * math.sinh(sb) * math.cos(theta)
    assert d == pytest.approx(math.sqrt(k) * math.acosh(cosh_d), rel=1e-12)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("norm", [0.5, 25.0, 50.0])
def test_centroid_of_one_point_is_itself(k, norm):
    x = lift(_features(3, 2048, norm), k)
    c = lorentz_centroid(x[:1], k)
    # Equal to float64 precision in every coordinate (the textbook normaliser is off by ~1e5).
    torch.testing.assert_close(c, x[0], rtol=1e-12, atol=0.0)
    if norm / math.sqrt(k) <= 20:
        assert lorentz_distance(c, x[0], k).item() < 1e-6


@pytest.mark.parametrize("k", KS)
def test_centroid_matches_textbook_formula_near_origin(k):
    x = lift(_features(10, 8, 1.0, seed=5) * torch.rand(10, 1, dtype=torch.float64), k)
    w = torch.rand(10, dtype=torch.float64)
    a = (w.unsqueeze(-1) * x).sum(0)
    expected = math.sqrt(k) * a / (-minkowski_inner(a, a)).sqrt()
    torch.testing.assert_close(lorentz_centroid(x, k, w), expected, rtol=1e-12, atol=1e-12)
    c = lorentz_centroid(x, k)
    assert minkowski_inner(c, c).item() == pytest.approx(-k, rel=1e-12)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("norm", [1.0, 20.0])
def test_centroid_of_symmetric_pair_is_geodesic_midpoint(k, norm):
    # Two points symmetric about the origin's ray through e: the centroid is on that ray,
    # equidistant from both, and on the geodesic between them (d(x,c) + d(c,y) = d(x,y)).
    e, f = _unit(32, 6), _unit(32, 7)
    f = f - (f @ e) * e
    f = f / f.norm()
    x, y = lift(norm * (0.8 * e + 0.6 * f), k), lift(norm * (0.8 * e - 0.6 * f), k)
    c = lorentz_centroid(torch.stack([x, y]), k)
    dxc, dyc, dxy = (lorentz_distance(p, q, k).item() for p, q in ((x, c), (y, c), (x, y)))
    assert dxc == pytest.approx(dyc, rel=1e-9)
    assert dxc + dyc == pytest.approx(dxy, rel=1e-9)
    # Pair on one geodesic through the origin: the midpoint is the origin.
    c0 = lorentz_centroid(torch.stack([lift(norm * e, k), lift(-norm * e, k)]), k)
    assert distance_to_origin(c0, k).item() == pytest.approx(0.0, abs=1e-6)


def test_centroid_is_invariant_to_weight_scale_and_rejects_negative_weights():
    x = lift(_features(5, 8, 3.0), 1.0)
    w = torch.rand(5, dtype=torch.float64)
    torch.testing.assert_close(lorentz_centroid(x, 1.0, w), lorentz_centroid(x, 1.0, 7.0 * w))
    with pytest.raises(ValueError):
        lorentz_centroid(x, 1.0, -w)


@pytest.mark.parametrize("norm", [1.0, 25.0, 50.0])
def test_gradients_are_finite_for_large_feature_norms(norm):
    v = _features(12, 2048, norm, seed=8).float().requires_grad_(True)
    x = lift(v, 1.0)
    d = lorentz_distance(lorentz_centroid(x[:6]), lorentz_centroid(x[6:]))
    d.backward()
    assert torch.isfinite(d) and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_gradient_of_distance_matches_finite_differences():
    v = _features(4, 6, 2.0, seed=9).requires_grad_(True)

    def f(v):
        x = lift(v, 2.4)
        return lorentz_distance(lorentz_centroid(x[:2], 2.4), lorentz_centroid(x[2:], 2.4), 2.4)

    assert torch.autograd.gradcheck(f, (v,))


def test_poincare_map_lands_in_ball_and_preserves_distance_to_origin():
    k = 2.4
    x = lift(_features(6, 4, 3.0), k)
    p = to_poincare(x, k)
    assert (p.norm(dim=-1) < math.sqrt(k)).all()
    # Poincaré ball of radius sqrt(k): d(0, p) = 2 sqrt(k) artanh(|p| / sqrt(k)).
    d = 2 * math.sqrt(k) * torch.atanh(p.norm(dim=-1) / math.sqrt(k))
    torch.testing.assert_close(d, distance_to_origin(x, k))


def test_invalid_k_is_rejected():
    with pytest.raises(ValueError):
        manifold(0.0)


@pytest.mark.parametrize("k", [0.5, 1.0, 2.4])
@pytest.mark.parametrize("scale", [0.1, 3.0, 25.0])
def test_feature_centroid_equals_the_centroid_of_the_lifted_points(k, scale):
    g = torch.Generator().manual_seed(int(scale * 10) + int(k * 100))
    f = torch.randn(3, 7, 16, generator=g, dtype=torch.float64) * scale / 4
    w = torch.rand(3, 7, generator=g, dtype=torch.float64)
    expected = lorentz_normalize_sum(lift(f, k), w, k)
    got = feature_centroid(f, w, k)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12 * expected.abs().max())
    # Gradients agree as well.
    fa = f.clone().requires_grad_()
    fb = f.clone().requires_grad_()
    target = lift(torch.randn(3, 16, generator=g, dtype=torch.float64), k)
    lorentz_distance(feature_centroid(fa, w, k), target, k).sum().backward()
    lorentz_distance(lorentz_normalize_sum(lift(fb, k), w, k), target, k).sum().backward()
    torch.testing.assert_close(fa.grad, fb.grad, rtol=1e-9, atol=1e-12)


def test_feature_centroid_of_one_far_point_is_that_point():
    f = torch.randn(1, 1, 128, dtype=torch.float64)
    f = f / f.norm() * 50.0  # coordinates ~ e^50 / 2
    centroid = feature_centroid(f, torch.ones(1, 1), 1.0)
    point = lift(f, 1.0)[0]
    # Coordinates agree to float64 precision. (The geodesic distance between the two is no
    # test here: at norm 50 a one-ulp difference in direction is a distance of ~25.)
    torch.testing.assert_close(centroid, point, rtol=1e-12, atol=0)
    # Two weighted copies at the norm of ConvNet features (~25): the same point, as closely
    # as lorentz_normalize_sum manages (beyond, both lose the gap k / 2x0 ~ e^-norm to rounding).
    f25 = f / 2
    one = feature_centroid(f25, torch.ones(1, 1), 1.0)
    twice = feature_centroid(f25.expand(1, 2, 128), torch.tensor([[0.3, 2.0]]), 1.0)
    reference = lorentz_normalize_sum(lift(f25.expand(1, 2, 128), 1.0), torch.tensor([[0.3, 2.0]]))
    assert lorentz_distance(twice, one, 1.0).item() < 1e-4
    assert lorentz_distance(reference, one, 1.0).item() < 1e-4


# --- the released lifts: capped exponential map and projection --------------------------


@pytest.mark.parametrize("k", KS)
def test_capped_expmap_is_exact_below_the_cap_and_sits_on_the_cap_beyond(k):
    sk = math.sqrt(k)
    near = _features(5, 32, 3.0 * sk)
    torch.testing.assert_close(lift(near, k, "expmap", 10.0), lift(near, k), rtol=1e-12, atol=0)
    far = _features(5, 32, 25.0 * sk)
    x = lift(far, k, "expmap", 10.0)
    # Definition: (sqrt(k) cosh(R), sqrt(k) sinh(R) v/|v|) with R = min(|v|/sqrt(k), 10).
    e = far / far.norm(dim=-1, keepdim=True)
    expected = torch.cat(
        [torch.full((5, 1), sk * math.cosh(10.0), dtype=torch.float64), sk * math.sinh(10.0) * e],
        dim=-1,
    )
    torch.testing.assert_close(x, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(distance_to_origin(x, k), torch.full((5,), 10.0 * sk).double())
    rel = (minkowski_inner(x, x) + k).abs() / x[:, 0] ** 2
    assert rel.max() < 1e-14


@pytest.mark.parametrize("k", KS)
def test_capped_expmap_is_geoopts_exact_map_of_the_clamped_tangent_vector(k):
    v = _features(6, 16, 1.0) * torch.tensor([1, 4, 9, 11, 30, 80.0]).double().unsqueeze(1)
    v = v * math.sqrt(k)
    norms = v.norm(dim=-1, keepdim=True)
    clamped = v * (10.0 * math.sqrt(k) / norms).clamp_max(1.0)
    m = manifold(k)
    expected = m.projx(m.expmap0(torch.nn.functional.pad(clamped, (1, 0))))
    torch.testing.assert_close(lift(v, k, "expmap", 10.0), expected, rtol=1e-12, atol=0)


def test_capped_expmap_passes_no_radial_gradient_beyond_the_cap():
    k = 1.0
    for norm, radial_zero in ((5.0, False), (25.0, True)):
        v = _features(1, 8, norm, seed=11).requires_grad_(True)
        x0 = lift(v, k, "expmap", 10.0)[0, 0]  # x0 depends on the radius only
        x0.backward()
        # Beyond the cap only rounding is left (projx recomputes x0 from |v / |v||).
        assert (v.grad.abs().max().item() < 1e-15 * x0.item()) is radial_zero
        # The direction still gets a gradient, orthogonal to v (the radius is frozen).
        w = _features(1, 8, 1.0, seed=12)
        v.grad = None
        (lift(v, k, "expmap", 10.0)[0, 1:] * w[0]).sum().backward()
        assert v.grad.abs().max() > 0
        if radial_zero:
            assert abs((v.grad * v).sum().item()) < 1e-9 * v.grad.norm().item() * norm


@pytest.mark.parametrize("k", KS)
def test_project_lift_is_geoopts_projx_of_the_zero_padded_feature(k):
    v = _features(7, 16, 25.0)
    x = lift(v, k, "project")
    expected = torch.cat([(k + v.square().sum(-1, keepdim=True)).sqrt(), v], dim=-1)
    torch.testing.assert_close(x, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(x, manifold(k).projx(torch.nn.functional.pad(v, (1, 0))))
    # Its level is logarithmic in |v|: sqrt(k) asinh(|v| / sqrt(k)).
    level = math.sqrt(k) * math.asinh(25.0 / math.sqrt(k))
    torch.testing.assert_close(distance_to_origin(x, k), torch.full((7,), level).double())


@pytest.mark.parametrize("kind,cap", [("expmap", 10.0), ("expmap", 2.0), ("project", None)])
@pytest.mark.parametrize("k", [0.5, 2.4])
def test_feature_centroid_follows_every_lift(kind, cap, k):
    g = torch.Generator().manual_seed(31)
    f = torch.randn(3, 7, 16, generator=g, dtype=torch.float64) * 6.0  # norms ~24
    w = torch.rand(3, 7, generator=g, dtype=torch.float64)
    expected = lorentz_normalize_sum(lift(f, k, kind, cap), w, k)
    got = feature_centroid(f, w, k, kind=kind, max_radius=cap)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12 * expected.abs().max())
    fa, fb = f.clone().requires_grad_(), f.clone().requires_grad_()
    target = lift(torch.randn(3, 16, generator=g, dtype=torch.float64), k)
    lorentz_distance(
        feature_centroid(fa, w, k, kind=kind, max_radius=cap), target, k
    ).sum().backward()
    lorentz_distance(
        lorentz_normalize_sum(lift(fb, k, kind, cap), w, k), target, k
    ).sum().backward()
    torch.testing.assert_close(fa.grad, fb.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "kind,cap,message",
    [("poincare", None, "unknown lift"), ("project", 10.0, "expmap lift only"),
     ("expmap", 0.0, "must be > 0")],
)  # fmt: skip
def test_bad_lift_settings_are_rejected(kind, cap, message):
    with pytest.raises(ValueError, match=message):
        lift(torch.ones(2, 3), 1.0, kind, cap)
