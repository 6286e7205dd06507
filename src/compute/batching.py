"""A network over a batch, whole or in pieces: the :class:`Compute` plan.

On a CPU a convolution over a few images keeps its feature maps in the last-level cache;
the same work over a whole batch streams them through memory. Each piece is computed the
way the whole batch would be, so results agree up to float rounding, unless a layer mixes
samples (train-mode BatchNorm): then a batch is never split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.compute.workers import map_pieces, worker_count
from src.errors import ConfigError

# Images per piece under ``auto`` on a CPU (gains in bench/results/suite.md): a no-grad
# forward of 32 images (feature maps 32 x 128 x 32 x 32 floats, 16 MiB), and a training
# forward and backward of 16, whose saved activations must fit as well (16 beat 8, 20, 25,
# 32 and 50 on 100- and 256-image batches).
CPU_EMBED_CHUNK = 32
CPU_TRAIN_CHUNK = 16
_CPU_CHUNK = {"embed": CPU_EMBED_CHUNK, "train": CPU_TRAIN_CHUNK}

T = TypeVar("T")
R = TypeVar("R", Tensor, dict[str, Tensor])


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


@dataclass(frozen=True)
class Compute:
    """How one network goes over a batch: whole (``chunk`` None, the default) or ``chunk``
    images at a time, on the CPU's piece workers."""

    chunk: int | None = None

    @classmethod
    def for_net(
        cls,
        setting: int | str,
        key: str,
        net: nn.Module,
        device: torch.device,
        work: Literal["embed", "train"],
    ) -> Compute:
        """The plan for ``net`` on ``device`` under the config value ``setting`` of ``key``.

        ``auto`` is whole batches on a GPU or for a net that mixes samples, and on a CPU
        the piece size measured best for ``work``; an explicit size for a net that mixes
        samples is a ConfigError naming ``key``.
        """
        if setting == "auto":
            whole = device.type != "cpu" or batch_dependent(net)
            return cls(None if whole else _CPU_CHUNK[work])
        if batch_dependent(net):
            raise ConfigError(
                f"{key} would change the batch statistics of the network's BatchNorm layers: "
                f"use {key}=auto or a model without batch norm"
            )
        return cls(check_chunk(setting, key))

    def or_chunk(self, size: int) -> Compute:
        """This plan, with whole batches replaced by pieces of ``size`` (bounds memory)."""
        return self if self.chunk is not None else Compute(size)

    def forward(self, fn: Callable[[Tensor], R], x: Tensor) -> R:
        """``fn(x)``, computed ``chunk`` rows of ``x`` at a time and concatenated (per key
        when ``fn`` returns a dict of tensors)."""
        if self.chunk is None:
            return fn(x)
        pieces = map_pieces(fn, x.split(self.chunk), x.device)
        if isinstance(pieces[0], dict):
            return {key: torch.cat([piece[key] for piece in pieces]) for key in pieces[0]}
        return torch.cat(pieces)

    def cross_entropy_backward(
        self,
        net: nn.Module,
        x: Tensor,
        y: Tensor,
        backward: Callable[[Tensor], None] = Tensor.backward,
    ) -> tuple[Tensor, Tensor]:
        """Accumulate the gradient of mean_i CE(net(x_i), y_i); returns the mean loss
        (detached) and the number of correct predictions, both 0-dim tensors.

        Each piece contributes sum_{i in piece} CE_i / len(x), so the accumulated gradient
        is the whole batch's. In one thread each piece goes through ``backward``. With
        several piece workers the batch is cut into one contiguous block of near-equal
        size per worker; each worker runs its block in pieces and returns the block's
        gradients, which are added to ``.grad`` in block order, so a run is reproducible
        however the threads are scheduled.
        """
        if self.chunk is None:
            loss, correct, _ = _block_step(net, [(x, y)], len(x), backward)
            return loss, correct
        pieces = list(zip(x.split(self.chunk), y.split(self.chunk), strict=True))
        workers = worker_count(len(pieces), x.device)
        if workers <= 1:
            loss, correct, _ = _block_step(net, pieces, len(x), backward)
            return loss, correct
        return self._on_workers(net, x, y, workers)

    def _on_workers(self, net: nn.Module, x: Tensor, y: Tensor, workers: int):
        """The backward of ``cross_entropy_backward`` split into one block per worker."""
        params = [p for p in net.parameters() if p.requires_grad]
        blocks = [
            list(zip(xb.split(self.chunk), yb.split(self.chunk), strict=True))
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
