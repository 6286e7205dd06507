"""Running a network over a batch in pieces, which a CPU's caches reward.

On a CPU a convolution over a few images keeps its feature maps in the last-level cache;
the same work over a whole batch streams them through memory. Each piece is computed the
way the whole batch would be, so results agree up to float rounding, unless a layer
mixes samples (train-mode BatchNorm): then a batch is never split.
"""

from __future__ import annotations

from collections.abc import Callable

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


def forward_in_pieces(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int | None) -> Tensor:
    """``fn(x)`` computed ``chunk`` images at a time (None: all at once), concatenated."""
    return torch.cat([fn(piece) for piece in x.split(chunk)]) if chunk else fn(x)


def cross_entropy_backward(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    chunk: int | None,
    backward: Callable[[Tensor], None] = Tensor.backward,
) -> tuple[Tensor, Tensor]:
    """Accumulate the gradient of mean_i CE(net(x_i), y_i), ``chunk`` images at a time.

    Each piece contributes sum_{i in piece} CE_i / len(x), so the accumulated gradient is
    the whole batch's. Returns the mean loss (detached) and the number of correct
    predictions, both 0-dim tensors.
    """
    pieces = zip(x.split(chunk), y.split(chunk), strict=True) if chunk else [(x, y)]
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for xs, ys in pieces:
        logits = net(xs)
        piece_loss = F.cross_entropy(logits, ys, reduction="sum") / len(x)
        backward(piece_loss)
        loss = loss + piece_loss.detach()
        correct = correct + (logits.argmax(dim=1) == ys).sum()
    return loss, correct
