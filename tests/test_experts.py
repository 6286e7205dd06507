"""The expert pool: trained on first use, kept on disk by protocol, resumed per epoch; the
interpolation between two checkpoints; CutMix."""

from __future__ import annotations

import torch

from src.data import RealPool
from src.methods.experts import ExpertPool, ExpertProtocol, cut_mix, interpolate, pool_dir
from src.models import build_model


def _pool(n=40, classes=4, seed=0) -> RealPool:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    return RealPool(images, torch.arange(n) % classes, classes, (0.5,), (0.25,))


def _factory():
    return build_model("convnet", 1, 4, (28, 28), width=4)


def _experts(tmp_path, **settings) -> ExpertPool:
    protocol = ExpertProtocol(**({"num_experts": 2, "epochs": 3, "batch_size": 16} | settings))
    directory = pool_dir(tmp_path, "fake-40", _factory(), protocol)
    return ExpertPool(directory, protocol, _factory, {"dataset": "fake-40"})


def test_a_pool_is_trained_once_and_kept_by_protocol(tmp_path):
    pool = _experts(tmp_path, save_epochs=(1,))
    assert not pool.is_trained()
    pool.ensure_trained(_pool())
    assert pool.is_trained()
    for i in range(2):
        start, middle, end = (pool.state(i, e) for e in (0, 1, 3))
        assert not torch.equal(start["classifier.weight"], end["classifier.weight"])
        assert not torch.equal(middle["classifier.weight"], end["classifier.weight"])
    # Another protocol is another directory; the same protocol the same one.
    assert _experts(tmp_path, save_epochs=(1,)).directory == pool.directory
    assert _experts(tmp_path, epochs=4).directory != pool.directory
    assert (pool.directory / "protocol.json").is_file()


def test_an_interrupted_pool_resumes_to_the_same_weights(tmp_path):
    whole = _experts(tmp_path / "whole")
    whole.ensure_trained(_pool())
    split = _experts(tmp_path / "split")
    trained = split._train_expert(0, _pool(), "cpu")
    next(trained)  # one epoch of expert 0, then the process "stops"
    trained.close()
    split.ensure_trained(_pool())
    for i in range(2):
        for key, value in whole.state(i, 3).items():
            assert torch.equal(split.state(i, 3)[key], value), key


def test_the_learning_rate_steps_down_at_the_milestones():
    p = ExpertProtocol(epochs=60, lr=0.01, gamma=0.2)
    assert [p.lr_at(e) for e in (0, 39, 40, 49, 50, 59)] == [
        0.01, 0.01, 0.01 * 0.2, 0.01 * 0.2, 0.01 * 0.2**2, 0.01 * 0.2**2
    ]  # fmt: skip


def test_interpolation_is_the_convex_mix_of_two_checkpoints():
    a = {"w": torch.tensor([0.0, 2.0]), "steps": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 6.0]), "steps": torch.tensor(7)}
    mixed = interpolate(a, b, 0.25)
    torch.testing.assert_close(mixed["w"], 0.25 * a["w"] + 0.75 * b["w"])
    assert int(mixed["steps"]) == 7  # integer buffers: the end's
    torch.testing.assert_close(interpolate(a, b, 0.0)["w"], b["w"])
    torch.testing.assert_close(interpolate(a, b, 1.0)["w"], a["w"])


def test_cutmix_pastes_one_box_and_reports_the_kept_area():
    x = torch.zeros(4, 1, 8, 8)
    x[:, 0] = torch.arange(4.0).view(4, 1, 1)  # image i is constant i
    y = torch.arange(4)
    g = torch.Generator().manual_seed(3)
    mixed, y_b, kept = cut_mix(x, y, g)
    for i in range(4):
        pasted = (mixed[i, 0] != x[i, 0]).float().mean().item()
        if y_b[i] != y[i]:
            assert abs((1 - kept) - pasted) < 1e-6
        assert set(mixed[i, 0].unique().tolist()) <= {float(y[i]), float(y_b[i])}
