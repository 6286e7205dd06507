"""IID: the covariance and spread terms against naive loops, the IPC-1 limit, tiny runs of IID
on DM and on IDM with both losses (resume: tests/test_resume.py)."""

from __future__ import annotations

import json

import pytest
import torch

from src.matching.terms import EMBED, ClassFeatures
from src.methods.iid import EXPERT, LOCAL, CovarianceTerm, SpreadTerm, weighted_covariance
from src.pipelines.components import run_label
from src.pipelines.distill import run_distill
from tests.helpers import TINY, compose_cfg

# A small pool of small experts on a pruned real pool, so a test trains it in seconds.
EXPERTS = ["method.experts.model=convnet_d1", "method.experts.num_experts=2",
           "method.experts.epochs=1", "method.experts.batch_size=64",
           "prune=random", "prune.keep_ratio=0.02"]  # fmt: skip


def _naive_covariance(maps):  # maps (n, K, S)
    mean = maps.mean(0)
    return sum((m - mean) @ (m - mean).T for m in maps) / len(maps)


def test_covariance_is_the_channel_covariance_of_the_maps_over_samples():
    g = torch.Generator().manual_seed(0)
    f = torch.rand(2, 5, 3, 4, generator=g)
    w = torch.ones(2, 5)
    w[1, 3:] = 0  # class 1: three real samples, then padding
    got = weighted_covariance(f, w)
    torch.testing.assert_close(got[0], _naive_covariance(f[0]))
    torch.testing.assert_close(got[1], _naive_covariance(f[1, :3]))


def test_the_terms_against_naive_loops_and_their_ipc_1_limit():
    g = torch.Generator().manual_seed(1)
    real = {LOCAL: torch.rand(2, 6, 3, 4, generator=g), EMBED: torch.rand(2, 6, 5, generator=g)}
    syn = {LOCAL: torch.rand(2, 2, 3, 4, generator=g), EXPERT: torch.rand(2, 2, 7, generator=g)}
    f = ClassFeatures(real, torch.ones(2, 6), syn)
    cov, spread = CovarianceTerm(0.01)(f), SpreadTerm(0.05)(f)
    for c in range(2):
        diff = _naive_covariance(real[LOCAL][c]) - _naive_covariance(syn[LOCAL][c])
        torch.testing.assert_close(cov[c], 0.01 * (diff**2).sum())
        e = syn[EXPERT][c]
        torch.testing.assert_close(spread[c], 0.05 * sum(((x - e.mean(0)) ** 2).sum() for x in e))
    one = ClassFeatures(real, torch.ones(2, 6), {k: v[:, :1] for k, v in syn.items()})
    assert torch.equal(SpreadTerm()(one), torch.zeros(2))
    one_syn = {k: v[:, :1].clone().requires_grad_() for k, v in syn.items()}
    CovarianceTerm()(ClassFeatures(real, torch.ones(2, 6), one_syn)).sum().backward()
    assert torch.equal(one_syn[LOCAL].grad, torch.zeros_like(one_syn[LOCAL]))  # inert at IPC 1


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One data directory for the module: its expert pool is trained once."""
    return tmp_path_factory.mktemp("data")


@pytest.mark.parametrize("method", ["iid", "idm_iid"])
@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
def test_tiny_iid_run_per_method_and_loss(tmp_path, data_dir, method, loss):
    extra = (
        ["ipc=1", "method.add_net_every=2", "method.train_steps=1"] if method == "idm_iid" else []
    )
    overrides = [*TINY, f"method={method}", f"loss={loss}", *EXPERTS, *extra,
                 "eval.random_baseline=false", "geometry.enabled=false", "logger=csv",
                 "trainer.log_every_n_steps=1", f"paths.data_dir={data_dir}",
                 f"paths.output_dir={tmp_path / 'run'}"]  # fmt: skip
    results = run_distill(compose_cfg("distill", overrides))
    meta = json.loads((tmp_path / "run" / "distilled.json").read_text())
    base = "DM+IID" if method == "iid" else "IDM+IID"
    assert results["label"] == meta["label"] == base + ("+HDD" if loss == "lorentz" else "")
    assert set(meta["method"]["terms"]) == {"match", "covariance", "spread"}
    header = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/covariance" in header and "train/spread" in header


def test_iid_presets_and_labels():
    dm = compose_cfg("distill", ["experiment=iid/cifar10_ipc10"])
    assert (dm.method.name, dm.ipc, dm.iterations, dm.method.batch_real, dm.method.lr_img) == (
        "iid", 10, 20000, 256, 1.0
    )  # fmt: skip
    assert (dm.method.cov_weight, dm.method.spread_weight) == (0.01, 0.05)
    assert (dm.method.experts.model, dm.method.experts.num_experts, dm.method.experts.epochs) == (
        "resnet18", 1000, 40
    )  # fmt: skip
    idm = compose_cfg("distill", ["experiment=idm_iid/cifar10_ipc10"])
    m = idm.method
    assert (m.name, m.lr_img, m.ce_weight, m.match_nets, m.factor) == ("idm_iid", 0.2, 0.5, 1, 2)
    assert (m.cov_weight, m.spread_weight) == (0.03, 0.01)
    assert run_label(idm) == "IDM+IID" and run_label(dm) == "DM+IID"
    assert run_label(
        compose_cfg("distill", ["method=iid", "method.cov_weight=0.1", "loss=euclidean"])
    ) == ("DM+IID (cov_weight 0.1)")


@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
def test_at_ipc_1_dm_iid_distills_dms_set_bitwise(tmp_path, data_dir, loss):
    """The study's IPC-1 IID rows are DM's: neither term moves one image per class."""
    from src.io import load_distilled

    def images(method, *extra):
        out = tmp_path / method
        overrides = [*TINY, "ipc=1", f"method={method}", f"loss={loss}", "prune=random",
                     "prune.keep_ratio=0.02", *extra, "eval.final=false",
                     "eval.random_baseline=false", "geometry.enabled=false",
                     f"paths.data_dir={data_dir}", f"paths.output_dir={out}"]  # fmt: skip
        run_distill(compose_cfg("distill", overrides))
        return load_distilled(out / "distilled.safetensors").images

    dm, iid = images("dm"), images("iid", *EXPERTS[:4])
    assert torch.equal(dm, iid)
    assert not torch.equal(dm, images("dm", "iterations=1"))  # the set did move
