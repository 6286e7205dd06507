"""The field's evaluation protocol (how its networks are trained) and a set's result."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


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
