"""Evaluate a set: train the protocol's networks on it, then test them on the real test set."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch import Tensor, nn

from src.augment import DSA
from src.data import RealPool
from src.data.factorize import expand
from src.evaluation.module import EvalModule
from src.evaluation.protocol import EvalProtocol, EvalResult


def evaluate_set(
    images: Tensor,
    labels: Tensor,
    test_pool: RealPool,
    model_factory: Callable[[], nn.Module],
    augment: DSA | None,
    protocol: EvalProtocol,
    *,
    factor: int = 1,
    make_trainer: Callable[..., L.Trainer] = L.Trainer,
    progress: bool = True,
) -> EvalResult:
    """Train ``protocol.num_models`` fresh networks on (images, labels) and test them.

    A factorised set (``factor`` > 1, IDM) is first expanded into its training images.
    """
    images, labels = expand(images, labels, factor)
    module = EvalModule(images, labels, test_pool, model_factory, augment, protocol)
    trainer = make_trainer(
        devices=1,  # one device suffices for a tiny set
        strategy="auto",
        max_steps=module.total_steps,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
    )
    trainer.fit(module)
    trainer.test(module, verbose=False)
    return EvalResult(module.test_accuracies)
