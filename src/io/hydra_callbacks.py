"""Hydra callbacks: lock a single run's directory before Hydra writes it; report failed jobs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from src.io.lock import RunLockedError, acquire

FAILED_FILE = "failed.json"  # written into a failed sweep job's directory


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


class ReportFailedJobs(Callback):
    """After a multirun, one ``error:`` line per failed job and exit status 1 if any failed.

    A job that stops on an error writes ``failed.json`` and returns, so the other jobs run
    (src/cli.py); ``python -m src.report`` counts the failed and missing jobs in its cells.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Scan the sweep directory for failed jobs."""
        failed = sorted(Path(config.hydra.sweep.dir).rglob(FAILED_FILE))
        for path in failed:
            error = json.loads(path.read_text()).get("error", "unknown error")
            print(f"error: sweep job {path.parent} failed: {error}", file=sys.stderr)
        if failed:
            raise SystemExit(1)
