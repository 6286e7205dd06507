"""DANCE: interpolated experts, the calibration term against a naive loop, tiny runs with both
losses (resume: tests/test_resume.py; the pool itself: tests/test_experts.py)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from src.methods.experts import interpolate
from src.pipelines.components import build_method, load_data, run_label
from src.pipelines.distill import run_distill
from tests.helpers import TINY, compose_cfg
from tests.helpers import TINY_EXPERTS as EXPERTS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One data directory for the module: its expert pool is trained once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def cfg_of(tmp_path, data_dir):
    def make(*extra):
        return compose_cfg("distill", [*TINY, "method=dance", *EXPERTS, "method.batch_real=8",
                                       f"paths.data_dir={data_dir}",
                                       f"paths.output_dir={tmp_path / 'run'}", *extra])  # fmt: skip

    return make


def _module(cfg):
    info, pool = load_data(cfg.dataset, train=True)
    module = build_method(cfg, info, pool.subset(torch.arange(0, len(pool), 50)))
    module.setup("fit")
    return module


def test_the_matching_network_mixes_one_experts_start_and_end(cfg_of):
    module = _module(cfg_of())
    state = module.gen_pick.get_state()
    module.pick_networks()
    g = torch.Generator().set_state(state)
    i = int(torch.randint(2, (), generator=g))
    mix = float(torch.rand((), generator=g))
    expected = interpolate(module.starts[i], module.ends[i], mix)
    for key, value in module.net_mid.state_dict().items():
        torch.testing.assert_close(value, expected[key])
    for key, value in module.net_end.state_dict().items():
        assert torch.equal(value, module.ends[i][key])
    assert not torch.equal(
        module.starts[i]["classifier.weight"], module.ends[i]["classifier.weight"]
    )


def test_calibration_is_each_classs_cross_entropy_on_the_experts_end(cfg_of):
    module = _module(cfg_of("method.calib_weight=0.5", "augment=none"))
    module.pick_networks()
    got = module.calibration()
    logits = module.net_end(module.syn_images)
    for c in range(10):
        rows = module.syn_labels == c
        expected = F.cross_entropy(logits[rows], module.syn_labels[rows])
        torch.testing.assert_close(got[c], 0.5 * expected)


def test_lr_img_follows_the_released_rule_unless_set(cfg_of):
    assert _module(cfg_of()).lr_img == pytest.approx(0.01 * 2)  # TINY: ipc 2
    assert _module(cfg_of("method.lr_img=0.3")).lr_img == 0.3


def test_clamping_keeps_the_pixels_in_the_unit_range(cfg_of):
    module = _module(cfg_of())
    with torch.no_grad():
        module.syn_images.mul_(100.0)
    module.clamp_images()
    pixels = module.syn_images * module.pool.std + module.pool.mean
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert pixels.min() < 1e-6 and pixels.max() > 1 - 1e-6


@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
def test_tiny_dance_run_per_loss(tmp_path, cfg_of, loss):
    quiet = ["eval.random_baseline=false", "geometry.enabled=false", "logger=csv",
             "trainer.log_every_n_steps=1"]  # fmt: skip
    results = run_distill(cfg_of(f"loss={loss}", *quiet))
    meta = json.loads((tmp_path / "run" / "distilled.json").read_text())
    label = "DANCE+HDD" if loss == "lorentz" else "DANCE"
    assert results["label"] == meta["label"] == label
    assert meta["method"]["experts"]["num_experts"] == 2 and meta["loss"]["name"] == loss
    header = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/match" in header and "train/calibration" in header
    assert run_label(cfg_of("method.calib_steps=2")) == "DANCE+HDD (calib_steps 2)"


PUBLISHED = {"fashion_mnist": "81.5 / 86.3 / 86.9", "cifar10": "47.1 / 70.8 / 76.1",
             "cifar100": "27.9 / 49.8 / 52.8", "tinyimagenet": "11.6 / 26.4 / 28.9"}  # fmt: skip


@pytest.mark.parametrize("dataset", sorted(PUBLISHED))
@pytest.mark.parametrize("ipc", [1, 10, 50])
def test_presets_hold_the_released_settings(dataset, ipc):
    from tests.helpers import ROOT

    cfg = compose_cfg("distill", [f"experiment=dance/{dataset}_ipc{ipc}"])
    assert (cfg.dataset.name, cfg.ipc, cfg.iterations, cfg.method.name) == (
        dataset, ipc, 10000, "dance"
    )  # fmt: skip
    m = cfg.method
    assert (m.batch_real, m.lr_img, m.lr_img_per_ipc, m.momentum, m.factor) == (
        128,
        None,
        0.01,
        0.5,
        1,
    )
    assert (m.calib_steps, m.calib_weight, m.experts.num_experts, m.experts.epochs) == (
        1,
        1.0,
        5,
        60,
    )
    assert (m.experts.lr, m.experts.batch_size, m.experts.gamma, m.experts.cutmix) == (
        0.01,
        64,
        0.2,
        0.5,
    )
    assert cfg.model.get("depth") == (3 if dataset == "tinyimagenet" else None)
    assert (cfg.eval.epochs, cfg.eval.batch_size) == (1500, 64)
    text = (ROOT / "conf" / "experiment" / "dance" / f"{dataset}_ipc{ipc}.yaml").read_text()
    assert PUBLISHED[dataset] in text
