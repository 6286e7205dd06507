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


@dataclass(frozen=True)
class EvalProtocol:
    """How evaluation networks are trained (docs/method.md §8): built once, passed whole."""

    num_models: int = 1
    epochs: int = 1000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    seed: int = 0
    train_chunk: int | str = "auto"
    test_chunk: int | str = "auto"

    @classmethod
    def from_config(cls, eval_cfg: Any, seed: int) -> EvalProtocol:
        """The protocol of a composed ``eval`` node (validated by ``validate_eval``)."""
        return cls(
            num_models=eval_cfg.num_models,
            epochs=eval_cfg.epochs,
            lr=eval_cfg.lr,
            momentum=eval_cfg.momentum,
            weight_decay=eval_cfg.weight_decay,
            batch_size=eval_cfg.batch_size,
            seed=seed,
            train_chunk=eval_cfg.get("train_chunk", "auto"),
            test_chunk=eval_cfg.get("test_chunk", "auto"),
        )


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
