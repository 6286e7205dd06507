"""Running a network over a batch in pieces, which a CPU's caches reward.

On a CPU a convolution over a few images keeps its feature maps in the last-level cache;
the same work over a whole batch streams them through memory. Each piece is computed the
way the whole batch would be, so results agree up to float rounding, unless a layer
mixes samples (train-mode BatchNorm): then a batch is never split.

On a CPU the pieces run concurrently on worker threads with one intra-op thread each, as
many workers as torch has threads. A small piece gives each of its many kernels too little
work to share between threads; whole pieces per thread keep every core busy without a
barrier per kernel, and a core that the machine briefly takes away stalls one piece
instead of every kernel. Each piece is computed by one thread and gradients are summed
block by block in a fixed order, so a run is reproducible however the threads are
scheduled.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.errors import ConfigError

# Images per piece under ``auto`` on a CPU (gains in bench/results/suite.md): a no-grad
# forward of 32 images (feature maps 32 x 128 x 32 x 32 floats, 16 MiB), and a training
# forward and backward of 16, whose saved activations must fit as well (16 beat 8, 20, 25,
# 32 and 50 on 100- and 256-image batches).
CPU_EMBED_CHUNK = 32
CPU_TRAIN_CHUNK = 16

T = TypeVar("T")
R = TypeVar("R")

_workers_setting: int | None = None  # None: torch.get_num_threads() at the call
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def check_chunk(value: int | str, key: str) -> int | str:
    """``value`` if it is ``auto`` or a positive int, else ConfigError naming ``key``."""
    if value != "auto" and not (
        isinstance(value, int) and not isinstance(value, bool) and value >= 1
    ):
        raise ConfigError(f"{key} must be auto or an int >= 1, got {value!r}")
    return value


def batch_dependent(net: nn.Module) -> bool:
    """Whether ``net``'s output for one sample depends on the rest of its batch (train-mode BN)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in net.modules())


def resolve_chunk(
    setting: int | str, key: str, net: nn.Module, device: torch.device, cpu_chunk: int
) -> int | None:
    """Images per piece for ``net`` under ``setting`` (None: the whole batch at once).

    ``auto`` is ``cpu_chunk`` on a CPU and the whole batch elsewhere or when ``net`` mixes
    samples; an explicit size for such a net is a ConfigError naming ``key``.
    """
    if setting == "auto":
        return cpu_chunk if device.type == "cpu" and not batch_dependent(net) else None
    if batch_dependent(net):
        raise ConfigError(
            f"{key} would change the batch statistics of the network's BatchNorm layers: "
            f"use {key}=auto or a model without batch norm"
        )
    return setting


def set_piece_workers(n: int | None) -> None:
    """Run pieces on ``n`` worker threads (1: in the calling thread; None: torch's threads)."""
    global _workers_setting
    if n is not None and n < 1:
        raise ValueError(f"piece workers must be >= 1 or None, got {n}")
    _workers_setting = n


def piece_workers() -> int:
    """Worker threads that pieces run on now: the set number, else torch.get_num_threads()."""
    return _workers_setting if _workers_setting is not None else torch.get_num_threads()


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


def _workers_for(n_items: int, device: torch.device) -> int:
    """Piece workers that ``n_items`` on ``device`` can use (1: the calling thread)."""
    return min(piece_workers(), n_items) if device.type == "cpu" else 1


def map_pieces(fn: Callable[[T], R], items: Sequence[T], device: torch.device) -> list[R]:
    """``[fn(item) for item in items]``, on the piece workers if ``device`` is a CPU."""
    if _workers_for(len(items), device) <= 1:
        return [fn(item) for item in items]
    return list(_single_threaded_pool(piece_workers()).map(_with_caller_modes(fn), items))


def forward_in_pieces(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int | None) -> Tensor:
    """``fn(x)`` computed ``chunk`` images at a time (None: all at once), concatenated."""
    return torch.cat(map_pieces(fn, x.split(chunk), x.device)) if chunk else fn(x)


def cross_entropy_backward(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    chunk: int | None,
    backward: Callable[[Tensor], None] = Tensor.backward,
) -> tuple[Tensor, Tensor]:
    """Accumulate the gradient of mean_i CE(net(x_i), y_i), ``chunk`` images at a time.

    Each piece contributes sum_{i in piece} CE_i / len(x), so the accumulated gradient is
    the whole batch's. In one thread each piece goes through ``backward``. With several
    piece workers the batch is cut into one contiguous block of near-equal size per worker;
    each worker runs its block in pieces and returns the block's gradients, which are added
    to ``.grad`` in block order. Returns the mean loss (detached) and the number of correct
    predictions, both 0-dim tensors.
    """
    pieces = list(zip(x.split(chunk), y.split(chunk), strict=True)) if chunk else [(x, y)]
    workers = _workers_for(len(pieces), x.device)
    if workers <= 1:
        loss, correct, _ = _block_step(net, pieces, len(x), backward)
        return loss, correct
    params = [p for p in net.parameters() if p.requires_grad]
    blocks = [
        list(zip(xb.split(chunk), yb.split(chunk), strict=True))
        for xb, yb in zip(x.tensor_split(workers), y.tensor_split(workers), strict=True)
    ]
    results = map_pieces(
        lambda block: _block_step(net, block, len(x), params=params), blocks, x.device
    )
    for i, param in enumerate(params):
        grads = [g[i] for _, _, g in results if g[i] is not None]
        if grads:
            total = torch.stack(grads).sum(dim=0) if len(grads) > 1 else grads[0]
            param.grad = total if param.grad is None else param.grad + total
    loss = torch.stack([r[0] for r in results]).sum()
    correct = torch.stack([r[1] for r in results]).sum()
    return loss, correct


def _block_step(
    net: nn.Module,
    pieces: list[tuple[Tensor, Tensor]],
    batch_size: int,
    backward: Callable[[Tensor], None] | None = None,
    params: list[Tensor] | None = None,
) -> tuple[Tensor, Tensor, list[Tensor | None]]:
    """Loss and correct count of ``pieces``; their gradients go through ``backward``, or,
    given ``params``, are summed and returned."""
    device = pieces[0][0].device
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    grads: list[Tensor | None] = [None] * len(params or [])
    for xs, ys in pieces:
        logits = net(xs)
        piece_loss = F.cross_entropy(logits, ys, reduction="sum") / batch_size
        if params is None:
            backward(piece_loss)
        else:
            piece_grads = torch.autograd.grad(piece_loss, params, allow_unused=True)
            grads = [_add(acc, g) for acc, g in zip(grads, piece_grads, strict=True)]
        loss = loss + piece_loss.detach()
        correct = correct + (logits.argmax(dim=1) == ys).sum()
    return loss, correct, grads


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """a + b, where None (a parameter the loss does not reach) adds nothing."""
    return b if a is None else a if b is None else a + b
