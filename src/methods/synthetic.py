"""Initial synthetic sets: real images of each class, or Gaussian noise."""

from __future__ import annotations

import torch
from torch import Tensor

from src.data import RealPool
from src.errors import ConfigError

INITS = ("real", "noise")


def initial_synthetic_set(
    pool: RealPool, ipc: int, init: str, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Images (C*ipc, ch, H, W) float32 and class-ordered labels (C*ipc,) to start from."""
    if ipc < 1:
        raise ConfigError(f"ipc must be >= 1, got {ipc}")
    if init not in INITS:
        raise ConfigError(f"unknown init '{init}'; choose one of: {', '.join(INITS)}")
    labels = torch.arange(pool.num_classes).repeat_interleave(ipc)
    indices = pool.random_per_class(ipc, generator)  # also checks ipc vs class sizes
    if init == "real":
        images = pool.get(indices).cpu()
    else:
        shape = (len(labels), *pool.images.shape[1:])
        images = torch.randn(shape, generator=generator)
    return images.contiguous(), labels
