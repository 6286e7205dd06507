"""DistillModule: learning, reproducibility, batching, and the NaN guard."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from src.augment import DSA
from src.errors import ConfigError, NonFiniteLossError
from src.matching import EuclideanMeanLoss, LorentzCentroidLoss
from src.methods.dm import DistillModule
from src.models import build_model
from src.rng import make_generator


def _module(pool, info, loss, seed=0, ipc=2, lr_img=1.0, iterations=40, width=8, **kwargs):
    def factory():
        return build_model("convnet", info.channels, info.num_classes, info.im_size, width=width)

    return DistillModule(
        pool, factory, loss, DSA(), ipc=ipc, iterations=iterations, batch_real=16,
        lr_img=lr_img, seed=seed, **kwargs,
    )  # fmt: skip


def _fit(module, steps):
    trainer = L.Trainer(
        max_steps=steps, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module)
    return trainer


def _probe_loss(module, draws=6):
    """Mean loss over fixed networks, real batches and augmentations (same for every call)."""
    module.gen_sample = make_generator(123, "sample")
    module.gen_augment = make_generator(123, "augment")
    module.gen_net = make_generator(123, "net")
    with torch.no_grad():
        return sum(module.class_losses().sum().item() for _ in range(draws)) / draws


@pytest.mark.parametrize(
    "loss,lr_img",
    [(EuclideanMeanLoss(), 1.0), (LorentzCentroidLoss(k=1.0, scale=20.0), 1.0)],
    ids=["dm", "dm_hdd"],
)
def test_distillation_lowers_the_matching_loss(fmnist_train, loss, lr_img):
    info, pool = fmnist_train
    module = _module(pool, info, loss, lr_img=lr_img)
    module.setup("fit")
    before = _probe_loss(module)
    start = module.syn_images.detach().clone()
    _fit(module, 40)
    after = _probe_loss(module)
    assert not torch.equal(start, module.syn_images.detach())
    assert after < 0.9 * before, (before, after)


def test_same_seed_same_set_different_seed_different_set(fmnist_train):
    info, pool = fmnist_train
    runs = []
    for seed in (0, 0, 1):
        module = _module(pool, info, LorentzCentroidLoss(), seed=seed)
        _fit(module, 3)
        runs.append(module.synthetic_set()[0])
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_init_real_uses_real_images_of_each_class_and_noise_is_gaussian(fmnist_train):
    info, pool = fmnist_train
    module = _module(pool, info, EuclideanMeanLoss(), ipc=3)
    images, labels = module.synthetic_set()
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    # Each initial image is one of its class's real images.
    flat = pool.normalize(pool.images).flatten(1)
    for img, c in zip(images, labels, strict=True):
        hits = (flat - img.flatten()).abs().amax(dim=1) < 1e-6
        assert hits.any() and (pool.labels[hits] == c).all()
    noise = DistillModule(
        pool, lambda: None, EuclideanMeanLoss(), DSA(), ipc=50, iterations=1, init="noise"
    ).syn_images.detach()
    assert abs(noise.mean().item()) < 0.01 and abs(noise.std().item() - 1.0) < 0.01


def _forward_sizes_and_losses(pool, info, **kwargs) -> tuple[list[int], torch.Tensor]:
    """Batch sizes of every embedding forward of one step, and that step's class losses."""
    module = _module(pool, info, LorentzCentroidLoss(), **kwargs)
    module.setup("fit")
    sizes = []
    extract = module.extract  # what the step calls: the extraction, or its compiled version
    module.extract = lambda x: sizes.append(len(x)) or extract(x)
    with torch.no_grad():
        return sizes, module.class_losses()


def test_one_forward_for_all_classes_real_images_chunked_on_a_cpu(fmnist_train):
    from src.compute import CPU_EMBED_CHUNK

    info, pool = fmnist_train
    whole, expected = _forward_sizes_and_losses(pool, info, embed_chunk=10**6)
    assert whole == [10 * 16, 10 * 2]  # all classes at once, real then synthetic
    # auto on a CPU: the real images in cache-sized chunks; 7: any size, a short last chunk.
    for chunk, sizes in ((7, [7] * 22 + [6]), ("auto", [CPU_EMBED_CHUNK] * 5)):
        got, losses = _forward_sizes_and_losses(pool, info, embed_chunk=chunk)
        assert got == [*sizes, 10 * 2]
        torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-6)


def test_embed_chunk_never_changes_batch_norm_statistics(fmnist_train):
    info, pool = fmnist_train

    def module(embed_chunk):
        def factory():
            return build_model("convnet_bn", 1, 10, (28, 28), width=4)

        m = DistillModule(pool, factory, EuclideanMeanLoss(), DSA(), ipc=1, iterations=1,
                          batch_real=16, embed_chunk=embed_chunk)  # fmt: skip
        m.setup("fit")
        return m

    sizes = []
    m = module("auto")  # train-mode BatchNorm: one forward, whatever the device
    extract = m.extract
    m.extract = lambda x: sizes.append(len(x)) or extract(x)
    m.class_losses()
    assert sizes == [10 * 16, 10]
    with pytest.raises(ConfigError, match="BatchNorm"):
        module(8).class_losses()
    for bad in (0, -3, "some", True):
        with pytest.raises(ConfigError, match="embed_chunk"):
            module(bad)


def test_non_finite_loss_stops_before_the_images_change(fmnist_train):
    info, pool = fmnist_train
    module = _module(pool, info, EuclideanMeanLoss())
    before = module.syn_images.detach().clone()
    module.loss.forward = lambda real, w, syn: torch.full((10,), float("nan")) + syn.sum() * 0
    with pytest.raises(NonFiniteLossError, match="not updated"):
        _fit(module, 3)
    assert torch.equal(before, module.syn_images.detach())


def test_run_stopped_by_a_non_finite_loss_keeps_the_last_finite_set(tmp_path, monkeypatch):
    from src.io import load_distilled
    from src.pipelines.distill import run_distill
    from tests.helpers import TINY, compose_cfg

    calls = {"n": 0}
    original = EuclideanMeanLoss.forward

    def nan_after_two_steps(self, real, weights, syn):
        calls["n"] += 1
        out = original(self, real, weights, syn)
        return out * float("nan") if calls["n"] > 2 else out

    monkeypatch.setattr(EuclideanMeanLoss, "forward", nan_after_two_steps)
    cfg = compose_cfg("distill", [*TINY, "loss=euclidean", "iterations=5",
                                  f"paths.output_dir={tmp_path}"])  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="last finite set"):
        run_distill(cfg)
    ds = load_distilled(tmp_path / "distilled.safetensors")
    assert torch.isfinite(ds.images).all()
    assert ds.meta["iteration"] == 2 and "iteration 2" in ds.meta["stopped"]


def test_compile_net_auto_compiles_only_runs_long_enough_to_repay_it(fmnist_train):
    from src.methods.dm import COMPILE_AUTO_MIN_ITERATIONS

    info, pool = fmnist_train

    def module(iterations, compile_net):
        return DistillModule(
            pool, lambda: build_model("convnet", 1, 10, (28, 28), width=4), EuclideanMeanLoss(),
            DSA(), ipc=1, iterations=iterations, compile_net=compile_net,
        )  # fmt: skip

    assert not module(COMPILE_AUTO_MIN_ITERATIONS - 1, "auto").use_compile()
    assert module(COMPILE_AUTO_MIN_ITERATIONS, "auto").use_compile()
    assert module(5, True).use_compile() and not module(10**6, False).use_compile()
    with pytest.raises(ConfigError, match="compile_net"):
        module(5, "sometimes")


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
def test_compiled_embedding_distills_the_same_set_as_eager(tmp_path, loss):
    from src.io import load_distilled
    from src.pipelines.distill import run_distill
    from tests.helpers import TINY, compose_cfg

    sets = []
    for compile_net in ("false", "true"):
        out = tmp_path / compile_net
        quiet = ["eval.final=false", "eval.random_baseline=false", "geometry.enabled=false"]
        overrides = [*TINY, f"loss={loss}", f"method.compile_net={compile_net}", *quiet]
        run_distill(compose_cfg("distill", [*overrides, f"paths.output_dir={out}"]))
        sets.append(load_distilled(out / "distilled.safetensors").images)
    torch.testing.assert_close(sets[1], sets[0], rtol=1e-4, atol=1e-4)
