"""EvalModule and the evaluation protocol."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch

from src.augment import DSA
from src.evaluation import EvalModule, EvalProtocol, EvalResult, evaluate_set
from src.models import build_model
from src.rng import make_generator


def _factory(info, width=8):
    return lambda: build_model(
        "convnet", info.channels, info.num_classes, info.im_size, width=width
    )


def _real_subset(pool, n, seed=0):
    idx = pool.random_per_class(n, make_generator(seed, "init"))
    return pool.get(idx), pool.labels[idx.flatten()]


def test_schedule_is_counted_in_steps_and_drops_lr_at_half(fmnist_train, fmnist_test):
    info, pool = fmnist_train
    images, labels = _real_subset(pool, 30)  # 300 images, batch 256: 2 steps per epoch
    module = EvalModule(images, labels, None, _factory(info), DSA(), EvalProtocol(epochs=3))
    assert (module.steps_per_epoch, module.total_steps) == (2, 6)
    lrs = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(
        max_steps=module.total_steps, max_epochs=1, logger=False, callbacks=[Spy()],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module)
    assert trainer.global_step == 6
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001, 0.001])


def test_every_image_is_seen_once_per_epoch_by_every_network(fmnist_train):
    info, pool = fmnist_train
    images, labels = _real_subset(pool, 30)
    protocol = EvalProtocol(num_models=2, epochs=2, batch_size=100)
    module = EvalModule(images, labels, None, _factory(info), None, protocol)
    module.setup("fit")
    epoch = torch.cat([module._batch_indices(s) for s in range(3)], dim=1)
    assert all(sorted(row.tolist()) == list(range(300)) for row in epoch)
    assert not torch.equal(epoch[0], epoch[1])  # each network has its own order


def test_training_on_real_images_beats_chance_and_is_reproducible(fmnist_train, fmnist_test):
    info, pool = fmnist_train
    _, test_pool = fmnist_test
    images, labels = _real_subset(pool, 10)
    protocol = EvalProtocol(num_models=2, epochs=40, seed=3)
    kwargs = dict(progress=False, make_trainer=partial(L.Trainer, accelerator="cpu"))
    first = evaluate_set(images, labels, test_pool, _factory(info), DSA(), protocol, **kwargs)
    again = evaluate_set(images, labels, test_pool, _factory(info), DSA(), protocol, **kwargs)
    assert first.accuracies == again.accuracies
    assert len(first.accuracies) == 2 and first.accuracies[0] != first.accuracies[1]
    # 10 classes: chance is 10%; 100 real images train a small ConvNet far beyond it.
    assert first.mean > 2 * 10.0


def test_eval_result_reports_population_std():
    r = EvalResult([50.0, 52.0, 54.0])
    assert r.mean == pytest.approx(52.0)
    assert r.std == pytest.approx((8 / 3) ** 0.5)
    assert str(r) == "52.00 ± 1.63"
