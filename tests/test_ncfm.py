"""NCFM: the characteristic-function discrepancy against closed forms and a naive loop, the
added HDD term, the release's fixed real batch, tiny runs with both losses (resume:
tests/test_resume.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from src.matching.characteristic import CharacteristicTerm, cf_discrepancy, empirical_cf
from src.matching.terms import EMBED, ClassFeatures
from src.pipelines.components import build_method, load_data, run_label
from src.pipelines.distill import run_distill
from tests.helpers import TINY, compose_cfg, problem_lines, run_module
from tests.helpers import TINY_EXPERTS as EXPERTS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One data directory for the module: its expert pool is trained once."""
    return tmp_path_factory.mktemp("data")


def _cfg(tmp_path, data_dir, *extra):
    return compose_cfg("distill", [*TINY, "method=ncfm", *EXPERTS, "method.batch_real=8",
                                   "method.num_freqs=64", f"paths.data_dir={data_dir}",
                                   f"paths.output_dir={tmp_path / 'run'}", *extra])  # fmt: skip


def test_two_point_masses_give_the_closed_form():
    # phi_r = exp(i t.a), phi_s = exp(i t.b): A = 0 and P = 2 (1 - cos t.(a - b)) = 4 sin^2(..),
    # so the loss is mean_t 2 sqrt(beta) |sin(t.(a - b) / 2)|.
    a, b = torch.tensor([[0.3, -0.2, 0.9]]), torch.tensor([[-0.5, 0.4, 0.1]])
    t, one = torch.randn(500, 3, dtype=torch.float64), torch.ones(1)
    a, b = a.double(), b.double()
    got = cf_discrepancy(empirical_cf(a, one, t), empirical_cf(b, one, t), 0.3, 0.7)
    expected = (2 * math.sqrt(0.7) * torch.sin(t @ (a - b).T / 2).abs()).mean()
    torch.testing.assert_close(got, expected)


def test_at_equal_weights_the_loss_is_the_mean_modulus_of_the_cf_difference():
    real, syn = torch.randn(20, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    t = torch.randn(300, 5, dtype=torch.float64)
    phi = [torch.exp(1j * (x @ t.T)).mean(dim=0) for x in (real, syn)]
    expected = ((phi[0] - phi[1]).abs() / math.sqrt(2)).mean()
    got = cf_discrepancy(
        empirical_cf(real, torch.ones(20), t), empirical_cf(syn, torch.ones(7), t), 0.5, 0.5
    )
    torch.testing.assert_close(got, expected)


def test_the_term_against_a_naive_per_class_loop_with_padding_ignored():
    g = torch.Generator().manual_seed(0)
    real, syn = torch.randn(3, 6, 8, generator=g), torch.randn(3, 2, 8, generator=g)
    weights = torch.ones(3, 6)
    weights[1, 4:] = 0  # class 1 has 4 real samples; its padding must not count
    term = CharacteristicTerm(num_freqs=32, scale=300.0)
    term.generator = torch.Generator().manual_seed(5)
    got = term(ClassFeatures({EMBED: real}, weights, {EMBED: syn}))
    draws = torch.Generator().manual_seed(5)
    for c in range(3):
        t = torch.randn(32, 8, generator=draws)  # one draw per class, in class order
        r = real[c][weights[c] > 0]
        r, s = r / r.norm(dim=1, keepdim=True), syn[c] / syn[c].norm(dim=1, keepdim=True)
        phi = [torch.exp(1j * (x.double() @ t.double().T)).mean(dim=0) for x in (r, s)]
        expected = 300.0 * ((phi[0] - phi[1]).abs() / math.sqrt(2)).mean()
        torch.testing.assert_close(got[c].double(), expected, rtol=1e-5, atol=1e-5)


def test_the_added_hdd_term_is_the_lorentz_centroid_distance(tmp_path, data_dir):
    from src.hyperbolic import feature_centroid, lorentz_distance

    cfg = _cfg(tmp_path, data_dir, "loss=lorentz", "method.mean_weight=0.5")
    info, pool = load_data(cfg.dataset, train=True)
    module = build_method(cfg, info, pool)
    assert list(module.terms) == ["cf", "match"]
    g = torch.Generator().manual_seed(1)
    f = ClassFeatures({EMBED: torch.randn(2, 5, 16, generator=g)}, torch.ones(2, 5),
                      {EMBED: torch.randn(2, 3, 16, generator=g)})  # fmt: skip
    got = module.terms["match"](f)
    for c in range(2):
        centroids = [
            feature_centroid(x.double(), torch.ones(len(x)), 1.0, kind="expmap", max_radius=10.0)
            for x in (f.real[EMBED][c], f.syn[EMBED][c])
        ]
        expected = 0.5 * 20.0 * lorentz_distance(*centroids, 1.0)
        torch.testing.assert_close(got[c], expected.to(got.dtype))


def test_the_release_matches_the_same_first_images_of_each_class(tmp_path, data_dir):
    module = build_method(_cfg(tmp_path, data_dir), *load_data(_cfg(tmp_path, data_dir).dataset))
    first, w1 = module.real_batch_indices()
    again, _ = module.real_batch_indices()
    assert torch.equal(first, again) and torch.equal(first, module.pool.class_index[:, :8])
    assert torch.equal(w1, torch.ones(10, 8))
    module.real_batch = "random"
    module.gen_sample = torch.Generator().manual_seed(0)
    assert not torch.equal(module.real_batch_indices()[0], first)


@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
def test_tiny_ncfm_run_per_loss(tmp_path, data_dir, loss):
    weight = ["method.mean_weight=1.0"] if loss == "lorentz" else []
    quiet = ["eval.random_baseline=false", "geometry.enabled=false", "logger=csv",
             "trainer.log_every_n_steps=1"]  # fmt: skip
    results = run_distill(_cfg(tmp_path, data_dir, f"loss={loss}", *weight, *quiet))
    meta = json.loads((tmp_path / "run" / "distilled.json").read_text())
    label = "NCFM+HDD (mean_weight 1, num_freqs 64)" if loss == "lorentz" else "NCFM (num_freqs 64)"
    assert results["label"] == meta["label"] == label
    assert meta["method"]["optimizer"] == "adamw" and meta["method"]["factor"] == 2
    assert meta["method"]["terms"]["cf"]["num_freqs"] == 64
    header = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/cf" in header and "train/calibration" in header
    assert ("train/match" in header) == (loss == "lorentz")


def test_a_loss_without_its_weight_is_refused_before_any_data_load(tmp_path):
    proc = run_module("src.distill", "method=ncfm", "loss=lorentz", "iterations=1",
                      run_dir=tmp_path)  # fmt: skip
    assert proc.returncode == 2  # a configuration error
    lines = problem_lines(proc.stderr)
    assert any("method.mean_weight" in line and "+HDD" in line for line in lines)


PUBLISHED = {"cifar10": "49.5 / 71.8 / 77.4", "cifar100": "34.4 / 48.7 / 54.7",
             "tinyimagenet": "18.2 / 26.8 / 29.6"}  # fmt: skip


@pytest.mark.parametrize("dataset", sorted(PUBLISHED))
@pytest.mark.parametrize("ipc", [1, 10, 50])
def test_presets_hold_the_released_settings(dataset, ipc):
    from tests.helpers import ROOT

    cfg = compose_cfg("distill", [f"experiment=ncfm/{dataset}_ipc{ipc}"])
    m = cfg.method
    assert (cfg.dataset.name, cfg.ipc, cfg.iterations, m.name) == (dataset, ipc, 20000, "ncfm")
    assert (m.batch_real, m.factor, m.num_freqs, m.alpha, m.beta, m.cf_scale) == (
        1024, 2, 4096, 0.5, 0.5, 300.0
    )  # fmt: skip
    sgd = dataset == "cifar100" and ipc == 10
    assert (m.optimizer, m.lr_img) == (("sgd", 0.01) if sgd else ("adamw", 0.001))
    assert (m.experts.num_experts, m.experts.epochs, cfg.augment.strategy) == (
        20, 60, "color_crop_cutout"
    )  # fmt: skip
    assert run_label(cfg) == "NCFM"
    header = (ROOT / "conf" / "experiment" / "ncfm" / f"{dataset}_ipc{ipc}.yaml").read_text()
    assert PUBLISHED[dataset] in header
