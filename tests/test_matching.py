"""Matching losses against their definitions."""

import pytest
import torch

from src.hyperbolic import lift, lorentz_centroid, lorentz_distance
from src.matching import EuclideanMeanLoss, LorentzCentroidLoss


def _feats(*shape, seed=0, scale=3.0):
    return scale * torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_euclidean_loss_is_squared_mean_difference():
    real, syn = _feats(3, 8, 5), _feats(3, 2, 5, seed=1)
    out = EuclideanMeanLoss()(real, torch.ones(3, 8), syn)
    expected = (real.mean(1) - syn.mean(1)).pow(2).sum(-1)
    torch.testing.assert_close(out, expected)


def test_unsquared_euclidean_loss_is_the_scaled_distance_of_the_means():
    real, syn = _feats(3, 8, 5), _feats(3, 2, 5, seed=1)
    out = EuclideanMeanLoss(squared=False, scale=20.0)(real, torch.ones(3, 8), syn)
    torch.testing.assert_close(out, 20.0 * (real.mean(1) - syn.mean(1)).norm(dim=-1))
    assert EuclideanMeanLoss().describe() == {"name": "euclidean", "squared": True, "scale": 1.0}


@pytest.mark.parametrize(("lift_kind", "cap"), [("project", None), ("expmap", None)])
def test_hdd_flattens_to_the_unsquared_euclidean_loss_as_k_grows(lift_kind, cap):
    real, syn = _feats(3, 8, 5).double(), _feats(3, 2, 5, seed=1).double()
    control = EuclideanMeanLoss(squared=False, scale=20.0)(real, torch.ones(3, 8), syn)
    errors = []
    for k in (1e2, 1e4, 1e6):
        hdd = LorentzCentroidLoss(k=k, scale=20.0, lift=lift_kind, max_radius=cap)
        errors.append(((hdd(real, torch.ones(3, 8), syn) - control).abs() / control).max())
    # |v|^2 / k relative error: a hundredfold smaller per hundredfold k, 1e-5 at k = 1e6.
    assert errors[0] > 30 * errors[1] > 900 * errors[2] and errors[2] < 1e-5


def test_lorentz_loss_is_scaled_distance_between_centroids():
    real, syn = _feats(3, 8, 5), _feats(3, 2, 5, seed=1)
    k, scale = 2.4, 100.0
    out = LorentzCentroidLoss(k=k, scale=scale)(real, torch.ones(3, 8), syn)
    for c in range(3):
        d = lorentz_distance(
            lorentz_centroid(lift(real[c], k), k), lorentz_centroid(lift(syn[c], k), k), k
        )
        torch.testing.assert_close(out[c], scale * d)
    assert out.dtype == torch.float64


def test_padding_with_zero_weight_is_ignored_by_both_losses():
    real, syn = _feats(2, 6, 4), _feats(2, 3, 4, seed=2)
    weights = torch.ones(2, 6)
    weights[1, 4:] = 0.0
    for loss in (EuclideanMeanLoss(), LorentzCentroidLoss()):
        padded = loss(real, weights, syn)
        unpadded = loss(real[1:, :4], torch.ones(1, 4), syn[1:])
        torch.testing.assert_close(padded[1], unpadded[0])
        # Changing a padded feature changes nothing.
        real2 = real.clone()
        real2[1, 5] += 100.0
        torch.testing.assert_close(loss(real2, weights, syn), padded)


def test_losses_vanish_when_sets_coincide_and_grow_with_shift():
    real = _feats(2, 4, 6)
    for loss in (EuclideanMeanLoss(), LorentzCentroidLoss()):
        same = loss(real, torch.ones(2, 4), real.clone())
        assert same.abs().max() < 1e-6
        shifted = loss(real, torch.ones(2, 4), real + 0.5)
        further = loss(real, torch.ones(2, 4), real + 1.0)
        assert (shifted > 1e-3).all() and (further > shifted).all()


def test_lorentz_loss_backpropagates_finite_gradients_to_float32_features():
    real = _feats(2, 16, 2048, scale=1.0)
    real = 25.0 * real / real.norm(dim=-1, keepdim=True)
    syn = real[:, :1].clone().requires_grad_(True)
    out = LorentzCentroidLoss(k=1.0, scale=20.0)(real, torch.ones(2, 16), syn).sum()
    out.backward()
    assert syn.grad.dtype == torch.float32 and torch.isfinite(syn.grad).all()
    assert syn.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [LorentzCentroidLoss(k=1.0, scale=20.0), EuclideanMeanLoss()])
def test_losses_keep_their_precision_under_bf16_autocast(loss):
    g = torch.Generator().manual_seed(3)
    real = torch.randn(2, 6, 5, generator=g) * 4
    syn = torch.randn(2, 3, 5, generator=g) * 4
    w = torch.ones(2, 6)
    exact = loss(real, w, syn)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        # Features as a bf16 network hands them over; the loss itself must not drop precision.
        inside = loss(real.bfloat16(), w, syn.bfloat16())
        plain = loss(real.bfloat16().float(), w, syn.bfloat16().float())
    assert inside.dtype == exact.dtype
    torch.testing.assert_close(inside, plain, rtol=0, atol=0)


@pytest.mark.parametrize("lift_kind,cap", [("expmap", 10.0), ("expmap", None), ("project", None)])
def test_lorentz_loss_uses_its_lift(lift_kind, cap):
    real, syn = _feats(3, 8, 5, scale=12.0), _feats(3, 2, 5, seed=1, scale=12.0)  # norms > 10
    k, scale = 1.0, 20.0
    loss = LorentzCentroidLoss(k=k, scale=scale, lift=lift_kind, max_radius=cap)
    out = loss(real, torch.ones(3, 8), syn)
    for c in range(3):
        d = lorentz_distance(
            lorentz_centroid(lift(real[c], k, lift_kind, cap), k),
            lorentz_centroid(lift(syn[c], k, lift_kind, cap), k),
            k,
        )
        torch.testing.assert_close(out[c], scale * d)
    assert loss.describe() == {
        "name": "lorentz", "k": k, "scale": scale, "lift": lift_kind, "max_radius": cap
    }  # fmt: skip


def test_lifts_give_different_losses_beyond_the_cap():
    real, syn = _feats(2, 8, 5, scale=12.0), _feats(2, 2, 5, seed=1, scale=12.0)
    w = torch.ones(2, 8)
    capped = LorentzCentroidLoss(max_radius=10.0)(real, w, syn)
    exact = LorentzCentroidLoss(max_radius=None)(real, w, syn)
    project = LorentzCentroidLoss(lift="project", max_radius=None)(real, w, syn)
    assert not torch.allclose(capped, exact) and not torch.allclose(exact, project)


def test_lorentz_loss_rejects_bad_lift_settings():
    from src.errors import ConfigError

    with pytest.raises(ConfigError, match="loss: unknown lift 'poincare'"):
        LorentzCentroidLoss(lift="poincare")
    with pytest.raises(ConfigError, match="max_radius must be > 0"):
        LorentzCentroidLoss(max_radius=0.0)


def test_switching_the_lift_alone_drops_the_expmap_cap(tmp_path):
    from src.pipelines.components import build_loss, run_label
    from src.pipelines.validate import validate_distill
    from tests.helpers import compose_cfg

    loss = LorentzCentroidLoss(lift="project", max_radius=10.0)
    assert loss.max_radius is None and loss.settings()["max_radius"] is None
    x, w = torch.randn(2, 5, 8) * 20, torch.ones(2, 5)
    torch.testing.assert_close(loss(x, w, x[:, :2]), LorentzCentroidLoss(lift="project",
                               max_radius=None)(x, w, x[:, :2]))  # fmt: skip
    cfg = compose_cfg(
        "distill", ["dataset=fashion_mnist", "loss.lift=project", f"paths.output_dir={tmp_path}"]
    )
    validate_distill(cfg)  # no "max_radius caps the expmap lift only"
    assert build_loss(cfg.loss).max_radius is None
    assert run_label(cfg) == "DM+HDD (project, k 1, scale 20)"


def test_below_its_cap_k_only_rescales_the_capped_loss():
    # Every feature beyond the cap lies at level 10 sqrt(k): the geometry for k is the one
    # for k = 1 scaled by sqrt(k), so (k, scale) gives the loss of (1, scale * sqrt(k)).
    g = torch.Generator().manual_seed(5)
    real, syn = torch.rand(3, 8, 16, generator=g), torch.rand(3, 2, 16, generator=g)
    real = 30.0 * real / real.norm(dim=-1, keepdim=True)  # norm 30 > 10 sqrt(4)
    syn = 25.0 * syn / syn.norm(dim=-1, keepdim=True)
    w = torch.ones(3, 8)
    at_k4 = LorentzCentroidLoss(k=4.0, scale=20.0, max_radius=10.0)(real, w, syn)
    at_k1 = LorentzCentroidLoss(k=1.0, scale=40.0, max_radius=10.0)(real, w, syn)
    torch.testing.assert_close(at_k4, at_k1, rtol=1e-9, atol=0)
    # The exact map differs where a centroid stays far out: one synthetic image (IPC 1).
    one = syn[:, :1]
    exact = LorentzCentroidLoss(k=4.0, scale=20.0, max_radius=None)(real, w, one)
    capped = LorentzCentroidLoss(k=4.0, scale=20.0, max_radius=10.0)(real, w, one)
    assert (exact - capped).abs().min() > 1.0
