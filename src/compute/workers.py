"""The CPU's piece workers: one shared pool of threads with one intra-op thread each.

A small piece gives each of its many kernels too little work to share between threads;
whole pieces per thread keep every core busy without a barrier per kernel, and a core
that the machine briefly takes away stalls one piece instead of every kernel. There are
as many workers as torch has threads, unless :func:`set_piece_workers` says otherwise.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_workers_setting: int | None = None  # None: torch.get_num_threads() at the call
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def set_piece_workers(n: int | None) -> None:
    """Run pieces on ``n`` worker threads (1: in the calling thread; None: torch's threads)."""
    global _workers_setting
    if n is not None and n < 1:
        raise ValueError(f"piece workers must be >= 1 or None, got {n}")
    _workers_setting = n


def piece_workers() -> int:
    """Worker threads that pieces run on now: the set number, else torch.get_num_threads()."""
    return _workers_setting if _workers_setting is not None else torch.get_num_threads()


def worker_count(n_items: int, device: torch.device) -> int:
    """Piece workers that ``n_items`` on ``device`` can use (1: the calling thread)."""
    return min(piece_workers(), n_items) if device.type == "cpu" else 1


def map_pieces(fn: Callable[[T], R], items: Sequence[T], device: torch.device) -> list[R]:
    """``[fn(item) for item in items]``, on the piece workers if ``device`` is a CPU."""
    if worker_count(len(items), device) <= 1:
        return [fn(item) for item in items]
    return list(_single_threaded_pool(piece_workers()).map(_with_caller_modes(fn), items))


def _single_threaded_pool(n: int) -> ThreadPoolExecutor:
    """The shared pool of ``n`` workers, each limited to one intra-op thread."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is not None and _pool_size == n:
            return _pool
        if _pool is not None:
            _pool.shutdown()
        started = threading.Barrier(n)

        def one_thread() -> None:
            # A thread takes torch's process-wide count at its first parallel call; make
            # that call first, then set this thread's own OpenMP and MKL counts to one.
            torch.get_num_threads()
            torch.set_num_threads(1)
            started.wait()

        caller_threads = torch.get_num_threads()
        _pool = ThreadPoolExecutor(n, thread_name_prefix="pieces", initializer=one_thread)
        # n tasks held at the barrier start n workers; then the caller's count is restored,
        # which the workers' set_num_threads also wrote as the default for new threads.
        list(_pool.map(lambda _: None, range(n)))
        torch.set_num_threads(caller_threads)
        _pool_size = n
        return _pool


def _forget_pool() -> None:
    """In a forked child, which has none of the parent's threads: start a new pool on use."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _with_caller_modes(fn: Callable[[T], R]) -> Callable[[T], R]:
    """``fn`` run under the caller's grad, inference and CPU autocast modes (thread-local)."""
    grad = torch.is_grad_enabled()
    inference = torch.is_inference_mode_enabled()
    autocast = torch.is_autocast_enabled("cpu")
    dtype = torch.get_autocast_dtype("cpu")

    def run(item: T) -> R:
        with (
            torch.inference_mode(inference),
            torch.set_grad_enabled(grad),
            torch.autocast("cpu", dtype=dtype, enabled=autocast),
        ):
            return fn(item)

    return run
