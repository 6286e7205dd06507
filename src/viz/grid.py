"""A PNG grid of distilled images, one row per class."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision.utils as vutils
from torch import Tensor

from src.io.atomic import atomic_path


def class_rows(images: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, int]:
    """Order images class by class; returns the images and the per-row count (max per class)."""
    per_class = [images[labels == c] for c in range(num_classes)]
    width = max(1, max(len(p) for p in per_class))
    blank = images.new_ones((1, *images.shape[1:]))
    rows = [torch.cat([p, blank.expand(width - len(p), *images.shape[1:])]) for p in per_class]
    return torch.cat(rows), width


def save_image_grid(path: str | Path, images: Tensor, labels: Tensor, num_classes: int) -> Path:
    """Write images in [0, 1] as a PNG grid with one row per class, atomically."""
    ordered, width = class_rows(images.detach().cpu().float(), labels.cpu(), num_classes)
    grid = vutils.make_grid(ordered, nrow=width, padding=2, pad_value=1.0)
    with atomic_path(path) as tmp:
        vutils.save_image(grid, str(tmp), format="png")
    return Path(path)
