"""DataDAM: the attention map and term against naive loops, its HDD term against the Lorentz
centroid distance, tiny runs with both losses (resume: tests/test_resume.py)."""

from __future__ import annotations

import json

import pytest
import torch

from src.augment import DSA
from src.matching import EuclideanMeanLoss, LorentzCentroidLoss
from src.matching.terms import EMBED, ClassFeatures
from src.methods.datadam import AttentionTerm, DataDAMModule, spatial_attention
from src.models import build_model
from src.pipelines.distill import run_distill
from tests.helpers import TINY, compose_cfg


def test_spatial_attention_is_the_l2_normalised_channel_sum_of_powers():
    f = torch.randn(2, 3, 4, 5)
    for power in (1.0, 4.0):
        got = spatial_attention(f, power)
        for n in range(2):
            a = torch.zeros(4, 5)
            for c in range(3):
                a += f[n, c].abs() ** power
            a = a.flatten()
            torch.testing.assert_close(got[n], a / a.norm())
            assert got[n].norm().item() == pytest.approx(1.0)


def _features(seed=0, classes=3, real=6, syn=2):
    g = torch.Generator().manual_seed(seed)
    kinds = {"attention0": 16, "attention1": 4, EMBED: 8}
    r = {k: torch.rand(classes, real, d, generator=g) for k, d in kinds.items()}
    s = {k: torch.rand(classes, syn, d, generator=g) for k, d in kinds.items()}
    weights = torch.ones(classes, real)
    weights[2, 4:] = 0  # class 2 has 4 real samples: the rest is padding
    return ClassFeatures(r, weights, s)


def test_attention_term_is_a_per_class_loop_over_layers():
    f = _features()
    got = AttentionTerm(["attention0", "attention1"], weight=100.0)(f)
    for c in range(3):
        keep = f.real_weights[c] > 0
        expected = sum(
            (f.real[k][c][keep].mean(0) - f.syn[k][c].mean(0)).pow(2).sum()
            for k in ("attention0", "attention1")
        )
        torch.testing.assert_close(got[c], 100.0 * expected)


def _module(pool, info, loss, **kwargs):
    def factory():
        return build_model("convnet", info.channels, info.num_classes, info.im_size, width=8)

    return DataDAMModule(pool, factory, loss, DSA(), ipc=2, iterations=3, batch_real=8, **kwargs)


def test_the_extraction_reads_the_first_depth_minus_one_activations(fmnist_train):
    info, pool = fmnist_train
    module = _module(pool, info, EuclideanMeanLoss())
    net = module.net_factory()
    x = torch.randn(4, 1, 28, 28)
    out = module.extractor(net)(x)
    assert sorted(out) == ["attention0", "attention1", EMBED]  # depth 3: two ReLU outputs
    relu1 = net.features[:3](x)  # conv, norm, ReLU of block 1, before its pool
    torch.testing.assert_close(out["attention0"], spatial_attention(relu1))
    relu2 = net.features[3:7](net.features[:3](x))
    torch.testing.assert_close(out["attention1"], spatial_attention(relu2))
    torch.testing.assert_close(out[EMBED], net.embed(x))


@pytest.mark.parametrize("loss", [EuclideanMeanLoss(), LorentzCentroidLoss(k=1.0, scale=20.0)])
def test_the_step_is_attention_plus_the_loss_on_the_embedding(fmnist_train, loss):
    from src.hyperbolic import feature_centroid, lorentz_distance

    info, pool = fmnist_train
    module = _module(pool, info, loss, task_balance=0.02)
    f = _features()
    terms = {name: term(f) for name, term in module.terms.items()}
    assert list(terms) == ["attention", "match"]
    attention = AttentionTerm(["attention0", "attention1"], 100.0)(f)
    torch.testing.assert_close(terms["attention"], attention)
    for c in range(3):
        keep = f.real_weights[c] > 0
        real, syn = f.real[EMBED][c][keep], f.syn[EMBED][c]
        if isinstance(loss, EuclideanMeanLoss):
            expected = (real.mean(0) - syn.mean(0)).pow(2).sum()
        else:  # HDD: the scaled geodesic distance of the Lorentz centroids, capped expmap lift
            centroids = [
                feature_centroid(x, torch.ones(len(x)), 1.0, kind="expmap", max_radius=10.0)
                for x in (real.double(), syn.double())
            ]
            expected = 20.0 * lorentz_distance(*centroids, 1.0)
        torch.testing.assert_close(terms["match"][c], 2.0 * expected.to(terms["match"].dtype))


@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
def test_tiny_datadam_run_per_loss(tmp_path, loss):
    quiet = ["eval.random_baseline=false", "geometry.enabled=false"]
    overrides = [*TINY, "method=datadam", f"loss={loss}", *quiet, f"paths.output_dir={tmp_path}"]
    results = run_distill(compose_cfg("distill", overrides))
    meta = json.loads((tmp_path / "distilled.json").read_text())
    label = "DataDAM+HDD" if loss == "lorentz" else "DataDAM"
    assert results["label"] == meta["label"] == label
    assert meta["method"]["name"] == "datadam" and meta["loss"]["name"] == loss
    assert set(meta["method"]["terms"]) == {"attention", "match"}
    assert 0.0 <= results["distilled"]["mean"] <= 100.0


def test_datadam_variants_are_labelled():
    from src.pipelines.components import run_label

    cfg = compose_cfg("distill", ["method=datadam", "method.power=4.0", "loss=euclidean"])
    assert run_label(cfg) == "DataDAM (power 4)"


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "tinyimagenet"])
@pytest.mark.parametrize("ipc", [1, 10, 50])
def test_presets_hold_the_released_settings(dataset, ipc):
    cfg = compose_cfg("distill", [f"experiment=datadam/{dataset}_ipc{ipc}"])
    assert (cfg.dataset.name, cfg.ipc, cfg.iterations, cfg.method.name) == (
        dataset, ipc, 20000, "datadam"
    )  # fmt: skip
    m = cfg.method
    assert (m.batch_real, m.lr_img, m.momentum, m.init) == (64, 1.0, 0.5, "real")
    assert (m.power, m.attention_weight, m.task_balance) == (1.0, 100.0, 0.01)
    assert cfg.model.name == "convnet_bn"  # the release's '--model ConvNet' is BatchNorm
    assert cfg.model.get("depth") == (3 if dataset == "tinyimagenet" else None)
    assert (cfg.eval.epochs, cfg.eval.batch_size) == (1800, 64)
    assert cfg.loss._target_.endswith("EuclideanMeanLoss")
