"""IDM's factorised ("partitioned") synthetic images: f x f small images in one stored image.

A stored image of size H x W holds ``f^2`` patches of size (H/f) x (W/f) in raster
order. Before matching and before evaluation every stored image is split into its
patches, each upsampled back to H x W (bilinear); labels repeat ``f^2`` times.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from src.errors import ConfigError


def _check(height: int, width: int, factor: int) -> None:
    if factor < 1:
        raise ConfigError(f"factor must be >= 1, got {factor}")
    if height % factor or width % factor:
        raise ConfigError(f"image size {height}x{width} is not divisible by factor {factor}")


def split_patches(images: Tensor, factor: int) -> Tensor:
    """(N, C, H, W) -> (N * f^2, C, H/f, W/f): each image's patches, consecutively, raster order."""
    n, c, h, w = images.shape
    _check(h, w, factor)
    ph, pw = h // factor, w // factor
    patches = images.reshape(n, c, factor, ph, factor, pw).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(n * factor * factor, c, ph, pw)


def merge_patches(patches: Tensor, factor: int) -> Tensor:
    """Inverse of ``split_patches``: (N * f^2, C, h, w) -> (N, C, f*h, f*w)."""
    m, c, ph, pw = patches.shape
    if m % (factor * factor):
        raise ConfigError(f"{m} patches cannot be grouped by factor {factor}")
    n = m // (factor * factor)
    grid = patches.reshape(n, factor, factor, c, ph, pw).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(n, c, factor * ph, factor * pw)


def expand(images: Tensor, labels: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Decode stored images into training images: split, upsample x f, repeat labels."""
    if factor == 1:
        return images, labels
    h, w = images.shape[-2:]
    patches = split_patches(images, factor)
    up = F.interpolate(patches, size=(h, w), mode="bilinear", align_corners=False)
    return up, labels.repeat_interleave(factor * factor)


def pack(images: Tensor, factor: int) -> Tensor:
    """Encode N * f^2 full-size images into N stored images (each downscaled by 1/f)."""
    if factor == 1:
        return images
    h, w = images.shape[-2:]
    _check(h, w, factor)
    small = F.interpolate(
        images, size=(h // factor, w // factor), mode="bilinear", align_corners=False
    )
    return merge_patches(small, factor)
