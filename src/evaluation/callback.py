"""Evaluate the synthetic set at chosen distillation iterations."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L

from src.evaluation.protocol import EvalResult


class PeriodicEvaluation(L.Callback):
    """After the listed iterations, train fresh networks on the current synthetic set."""

    def __init__(self, eval_at: list[int], evaluate: Callable[..., EvalResult]) -> None:
        self.eval_at = set(eval_at)
        self.evaluate = evaluate
        self.history: dict[int, EvalResult] = {}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        """Evaluate when the iteration just finished is one of ``eval_at``."""
        step = pl_module.completed_iterations
        if step not in self.eval_at or step in self.history:
            return
        images, labels = pl_module.synthetic_set()
        result = self.evaluate(images, labels, progress=False, factor=pl_module.factor)
        self.history[step] = result
        pl_module.log("eval/acc_mean", result.mean)
        pl_module.log("eval/acc_std", result.std)
        print(f"iteration {step}: accuracy {result}")

    def state_dict(self) -> dict:
        """Accuracies measured so far (kept across a resume)."""
        return {"history": {str(k): list(v.accuracies) for k, v in self.history.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore the accuracies measured before the checkpoint."""
        self.history = {int(k): EvalResult(list(v)) for k, v in state["history"].items()}
