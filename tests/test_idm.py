"""IDM: factorised images, the network pool, per-class image steps, tiny end-to-end runs."""

from __future__ import annotations

import copy
import json

import lightning as L
import pytest
import torch

from src.augment import DSA
from src.data.factorize import expand, merge_patches, pack, split_patches
from src.errors import ConfigError
from src.matching import EuclideanMeanLoss, LorentzCentroidLoss
from src.methods.idm import IDMModule
from src.models import build_model
from src.pipelines.distill import run_distill
from src.pipelines.evaluate import run_evaluate
from tests.helpers import TINY, compose_cfg


def test_quadrant_split_and_merge_round_trip():
    x = torch.randn(5, 3, 32, 32)
    patches = split_patches(x, 2)
    assert patches.shape == (20, 3, 16, 16)
    torch.testing.assert_close(patches[1], x[0, :, :16, 16:])  # raster order: top right
    torch.testing.assert_close(patches[2], x[0, :, 16:, :16])
    assert torch.equal(merge_patches(patches, 2), x)
    assert torch.equal(split_patches(merge_patches(patches, 2), 2), patches)
    with pytest.raises(ConfigError):
        split_patches(torch.randn(1, 1, 28, 28), 3)


def test_expand_upsamples_each_patch_and_repeats_labels():
    x = torch.randn(4, 1, 28, 28)
    labels = torch.tensor([0, 0, 1, 1])
    images, out_labels = expand(x, labels, 2)
    assert images.shape == (16, 1, 28, 28)
    assert out_labels.tolist() == [0] * 8 + [1] * 8
    # A stored image with constant quadrants decodes into 4 constant full-size images,
    # and packing those (downscale by 2, place in quadrants) restores it.
    quadrants = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 14, 14)
    stored = merge_patches(quadrants, 2)
    decoded, _ = expand(stored, torch.tensor([0]), 2)
    assert [d.unique().tolist() for d in decoded] == [[0.0], [1.0], [2.0], [3.0]]
    torch.testing.assert_close(pack(decoded, 2), stored)
    assert expand(x, labels, 1)[0] is x


def _idm(pool, info, loss=None, **kwargs):
    def factory():
        return build_model("convnet", info.channels, info.num_classes, info.im_size, width=8)

    kwargs.setdefault("add_net_every", 2)
    return IDMModule(
        pool, factory, loss or EuclideanMeanLoss(), DSA(), ipc=1, iterations=6, batch_real=8,
        train_batch=32, train_steps=2, **kwargs,
    )  # fmt: skip


def _fit(module):
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module)
    return trainer


def test_real_init_packs_four_downscaled_real_images(fmnist_train):
    info, pool = fmnist_train
    module = _idm(pool, info)
    stored, labels = module.synthetic_set()
    assert stored.shape == (10, 1, 28, 28) and labels.tolist() == list(range(10))
    patches = split_patches(stored, 2)  # 4 half-size images per stored image
    assert not torch.allclose(patches[0], patches[1])


def test_unpacked_init_stores_one_full_size_real_image_per_synthetic_image(fmnist_train):
    from src.methods.base import init_generator, initial_synthetic_set

    info, pool = fmnist_train
    module = _idm(pool, info, pack_init=False)
    stored, labels = module.synthetic_set()
    # The released TinyImageNet IDM script: init draws ipc real images per class, unpacked.
    real, _ = initial_synthetic_set(pool, 1, "real", init_generator(0, "per_class", pool.classes))
    assert torch.equal(stored, real) and labels.tolist() == list(range(10))
    packed, _ = _idm(pool, info).synthetic_set()
    assert not torch.allclose(packed, stored)


def test_pool_grows_every_interval_and_is_capped(fmnist_train):
    info, pool = fmnist_train
    module = _idm(pool, info, add_net_every=2, pool_size=5)
    sizes, firsts = [], []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            sizes.append(len(pl_module.net_pool))
            firsts.append(pl_module.net_pool.nets[0])

    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", callbacks=[Spy()],
    )  # fmt: skip
    trainer.fit(module)
    # 3 initial networks, one more at iterations 0, 2, 4, capacity 5: oldest dropped.
    assert sizes == [4, 4, 5, 5, 5, 5]
    assert firsts[4] is not firsts[0]
    # Trained networks carry a running accuracy on real batches.
    assert any(module.net_pool.accuracy(i) > 0 for i in range(len(module.net_pool)))


def test_image_optimiser_steps_once_per_class_with_shared_momentum(fmnist_train):
    info, pool = fmnist_train
    module = _idm(pool, info, momentum=0.5, lr_img=0.1)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, accelerator="cpu")
    trainer.strategy.connect(module)
    module.trainer = trainer
    trainer.strategy._lightning_optimizers = None
    opt = torch.optim.SGD([module.syn_images], lr=0.1, momentum=0.5)
    module.optimizers = lambda: opt
    module.manual_backward = lambda loss: loss.backward()
    x0 = module.syn_images.detach().clone()
    weights = torch.arange(1.0, 11.0)  # loss_c = w_c * sum(images of class c): gradient w_c
    losses = torch.stack(
        [weights[c] * module.syn_images[c].sum() for c in range(10)]
    )  # fmt: skip
    module.step_per_class(losses)
    # Class c's own step comes c-th; the 9 - c later steps move it by momentum alone:
    # total move = lr * w_c * sum_{j=0}^{9-c} 0.5^j.
    for c in range(10):
        factor = sum(0.5**j for j in range(10 - c))
        expected = x0[c] - 0.1 * weights[c] * factor
        torch.testing.assert_close(module.syn_images.detach()[c], expected)


@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
def test_tiny_idm_runs_and_its_set_evaluates_identically_from_the_file(tmp_path, loss):
    overrides = [*TINY, "method=idm", f"loss={loss}", "ipc=1", "method.add_net_every=2",
                 "method.train_steps=2", "method.train_batch=32", "eval.random_baseline=false",
                 f"paths.output_dir={tmp_path / 'distill'}"]  # fmt: skip
    results = run_distill(compose_cfg("distill", overrides))
    meta = json.loads((tmp_path / "distill" / "distilled.json").read_text())
    method, loss_meta = meta["method"], meta["loss"]
    assert (method["name"], loss_meta["name"], method["factor"], meta["iteration"]) == (
        "idm", loss, 2, 3
    )  # fmt: skip
    assert set(method["terms"]) == {"match"}  # syn_ce is IDM's own step, not a feature term
    assert results["label"] == ("IDM+HDD" if loss == "lorentz" else "IDM")
    if loss == "lorentz":
        assert (loss_meta["k"], loss_meta["scale"]) == (2.4, 100.0)
    # src.evaluate reads the factor from the metadata: same networks, same expansion, same result.
    cfg = compose_cfg(
        "evaluate",
        [f"distilled={tmp_path / 'distill' / 'distilled.safetensors'}", "model.width=8",
         "eval.num_models=1", "eval.epochs=2", "logger=none", f"paths.output_dir={tmp_path}"],
    )  # fmt: skip
    assert run_evaluate(cfg).accuracies == results["distilled"]["accuracies"]


def test_idm_hdd_lowers_its_matching_loss(fmnist_train):
    info, pool = fmnist_train
    module = _idm(pool, info, LorentzCentroidLoss(k=2.4, scale=100.0), syn_ce=False, lr_img=0.5)
    module.iterations = 30
    module.setup("fit")
    # Probe with copies of the initial networks: the pool itself keeps training.
    probes = [copy.deepcopy(net).requires_grad_(False) for net in module.net_pool.nets]

    def probe():
        states = (module.gen_sample.get_state(), module.gen_augment.get_state())
        module.gen_sample.manual_seed(5)
        module.gen_augment.manual_seed(5)
        with torch.no_grad():
            value = sum(module.match(net)[0]["match"].sum().item() for net in probes)
        module.gen_sample.set_state(states[0])
        module.gen_augment.set_state(states[1])
        return value

    before = probe()
    _fit(module)
    after = probe()
    assert after < 0.9 * before, (before, after)
