"""The field's evaluation protocol: train fresh networks on a set, test on real data."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
from torch import Tensor, nn

from src.augment import DSA
from src.data import RealPool
from src.data.factorize import expand
from src.evaluation.module import EvalModule


@dataclass
class EvalResult:
    """Test accuracies (%) of the evaluated networks, with mean and population std."""

    accuracies: list[float]

    @property
    def mean(self) -> float:
        """Mean accuracy in percent."""
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        """Population standard deviation in percent (numpy's default, as papers report)."""
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f}"

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        return {"mean": self.mean, "std": self.std, "accuracies": self.accuracies}


def evaluate_set(
    images: Tensor,
    labels: Tensor,
    test_pool: RealPool,
    model_factory: Callable[[], nn.Module],
    augment: DSA | None,
    *,
    num_models: int,
    epochs: int,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    seed: int = 0,
    trainer_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    factor: int = 1,
    train_chunk: int | str = "auto",
    test_chunk: int | str = "auto",
) -> EvalResult:
    """Train ``num_models`` fresh networks on (images, labels) by docs/method.md §8 and test them.

    A factorised set (``factor`` > 1, IDM) is first expanded into its training images.
    """
    images, labels = expand(images, labels, factor)
    module = EvalModule(
        images,
        labels,
        test_pool,
        model_factory,
        augment,
        num_models=num_models,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        batch_size=batch_size,
        seed=seed,
        train_chunk=train_chunk,
        test_chunk=test_chunk,
    )
    kwargs = dict(trainer_kwargs or {})
    kwargs.pop("strategy", None)  # one device suffices for a tiny set
    kwargs["devices"] = 1
    trainer = L.Trainer(
        max_steps=module.total_steps,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        **kwargs,
    )
    trainer.fit(module)
    trainer.test(module, verbose=False)
    return EvalResult(module.test_accuracies)
