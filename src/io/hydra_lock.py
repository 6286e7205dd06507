"""A Hydra callback that locks a single run's directory before Hydra writes into it."""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from src.io.lock import RunLockedError, acquire


class LockRunDir(Callback):
    """Takes the run directory's writer lock before Hydra saves its config and log there.

    A refused process prints one ``error:`` line and exits with status 2 before anything
    is written; the lock is held until the process ends (the run's own lock re-uses it).
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Lock ``hydra.run.dir`` (single runs; a sweep's jobs lock their own directories)."""
        if rank_zero_only.rank != 0:
            return  # a DDP worker re-runs the command: rank 0 holds the lock for all ranks
        try:
            acquire(config.hydra.run.dir)
        except RunLockedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
