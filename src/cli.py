"""Shared behaviour of the entry points: user errors become one line and exit code 2, and
the parallel jobs of a local sweep share the CPU cores."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from src.errors import HDDError, RunInterrupted


def report_errors(
    fn: Callable[..., Any], *args: Any, in_sweep: Callable[[HDDError], None] | None = None
) -> Any:
    """Call ``fn``; an HDDError prints ``error: ...`` lines on stderr and exits (2 by default).

    In a Hydra multirun job with ``in_sweep`` the error is handed to it instead and the job
    returns, so the sweep's other jobs still run (the sweep's exit status reports it); but a
    stop request (SIGTERM: RunInterrupted) ends the whole sweep, after its job is recorded.
    """
    try:
        return fn(*args)
    except HDDError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        if in_sweep is not None and in_multirun():
            in_sweep(exc)
            if not isinstance(exc, RunInterrupted):
                return None
        sys.exit(getattr(exc, "exit_code", 2))


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def threads_per_job(n_jobs: int, cpus: int) -> int:
    """Threads for each of ``n_jobs`` parallel jobs on ``cpus`` cores: cpus // jobs, >= 1.

    As in joblib, ``n_jobs`` < 0 means cpus + 1 + n_jobs jobs (-1: one per core).
    """
    jobs = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)
    return max(1, cpus // jobs)


def share_cores_in_parallel_sweeps() -> None:
    """In a joblib multirun job, cap torch's threads at the job's share of the cores.

    Jobs that each use every core oversubscribe the CPU, which makes the small kernels of
    ``embed_chunk`` / ``train_chunk`` pieces several times slower. A set OMP_NUM_THREADS wins.
    """
    if "OMP_NUM_THREADS" in os.environ or not HydraConfig.initialized():
        return
    launcher = HydraConfig.get().launcher
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return
    share = threads_per_job(int(launcher.get("n_jobs") or -1), len(os.sched_getaffinity(0)))
    torch.set_num_threads(min(share, torch.get_num_threads()))
