"""Keep the lowest-scored fraction of every class."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from src.errors import ConfigError


def kept_count(class_size: int, keep_ratio: float, minimum: int = 1) -> int:
    """How many of a class's samples a ratio keeps: round up, at least ``minimum``."""
    return min(class_size, max(minimum, math.ceil(keep_ratio * class_size - 1e-9)))


def keep_lowest(
    scores: Tensor, labels: Tensor, num_classes: int, keep_ratio: float, minimum: int = 1
) -> Tensor:
    """Sorted indices of the ``keep_ratio`` lowest-scored samples of every class."""
    if not 0.0 < keep_ratio <= 1.0:
        raise ConfigError(f"prune.keep_ratio must lie in (0, 1], got {keep_ratio}")
    kept = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        n = kept_count(len(idx), keep_ratio, minimum)
        # Stable order among equal scores keeps the choice deterministic.
        order = torch.sort(scores[idx].cpu(), stable=True).indices[:n]
        kept.append(idx.cpu()[order])
    return torch.sort(torch.cat(kept)).values
