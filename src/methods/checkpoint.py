"""Periodic, atomic checkpoints of a distillation run, and one more on SIGTERM."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from src.compute.sharding import rank_file
from src.errors import CheckpointError
from src.io.checkpoint import RUN_STATE_KEY, keep_previous


class RunCheckpoint(L.Callback):
    """Write ``path`` every ``every`` iterations, at the end, and when SIGTERM arrives.

    The file is a Lightning checkpoint; the module adds its generators and counters, this
    callback the run's identity (config) and the pruned pool's indices. Writing goes to a
    temporary file that replaces ``path`` only once complete, so a kill at any moment
    leaves the previous checkpoint intact; the one it replaces stays beside it as
    ``previous.ckpt``, for a ``last.ckpt`` that is later found damaged.
    """

    def __init__(
        self, path: str | Path, every: int, identity: dict, kept: Tensor | None,
        seconds_before: float = 0.0,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.every = every
        self.identity = identity
        self.kept = kept
        self.saved_at = -1
        self.seconds_before = seconds_before  # of the interrupted parts of the run
        self.started = time.perf_counter()

    def seconds(self) -> float:
        """Distillation seconds of the whole run so far, interrupted parts included."""
        return self.seconds_before + time.perf_counter() - self.started

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Start this part's clock."""
        self.started = time.perf_counter()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict) -> None:
        """Record what a resumption must reproduce (the config and the kept indices) and the
        seconds spent so far, so a resumed run reports its whole time."""
        checkpoint.setdefault(RUN_STATE_KEY, {}).update(
            config=self.identity, kept=self.kept, distill_seconds=self.seconds()
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs, batch, idx) -> None:
        """Save on schedule, at the last iteration, or because SIGTERM was received."""
        done = pl_module.completed_iterations
        due = done % self.every == 0 or done == pl_module.iterations
        if due or trainer.received_sigterm:
            self.save(trainer, done)

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        """SIGTERM that arrived after this iteration's check still gets its checkpoint."""
        if isinstance(exception, SIGTERMException):
            self.save(trainer, pl_module.completed_iterations)

    def save(self, trainer: L.Trainer, done: int) -> None:
        """Write the checkpoint atomically (rank 0 writes; every rank takes part)."""
        if done == self.saved_at:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        # A class-sharded rank holds its own classes: it writes its own file (rank 0 the plain one).
        sharded = getattr(trainer.strategy, "shards_classes", False)
        writes = trainer.is_global_zero or sharded
        rank = trainer.global_rank if sharded else 0
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            trainer.save_checkpoint(tmp, weights_only=False)  # the full training state
            if writes:
                target = rank_file(self.path, rank)
                if target.is_file():  # keep the last good one for a damaged latest
                    keep_previous(target)
                os.replace(rank_file(tmp, rank), target)
        except OSError as exc:
            if writes:
                rank_file(tmp, rank).unlink(missing_ok=True)
            reason = "no space left on device" if exc.errno == errno.ENOSPC else exc.strerror
            raise CheckpointError(
                f"could not write checkpoint '{self.path}' at iteration {done} ({reason}); "
                "the previous checkpoint is intact"
            ) from None
        self.saved_at = done
