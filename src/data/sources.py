"""Where a store's images come from: a split already in memory (a registry data set) or an
ImageFolder tree (``<root>/<class>/<image>``) decoded and resized in worker processes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from src.errors import DataError

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


@dataclass
class Source:
    """Images by class: names, counts, one image's shape and ``read(c)`` -> uint8 (n_c, C, H, W)."""

    description: str
    class_names: list[str]
    counts: list[int]
    shape: tuple[int, int, int]
    read: Callable[[int], np.ndarray]
    mean: tuple[float, ...] | None = None  # None: measured over the store once it is built
    std: tuple[float, ...] | None = None


def tensor_source(
    description: str, images: Tensor, labels: Tensor, class_names: list[str], mean, std
) -> Source:
    """A split held in memory (uint8 N x C x H x W, labels), read class by class."""
    array, labels_np = images.numpy(), labels.numpy()
    rows = [np.flatnonzero(labels_np == c) for c in range(len(class_names))]
    return Source(description, class_names, [len(r) for r in rows], tuple(array.shape[1:]),
                  lambda c: array[rows[c]], tuple(mean), tuple(std))  # fmt: skip


def folder_classes(root: Path, classes: list[str] | None) -> list[str]:
    """The class folders of an ImageFolder tree: ``classes`` in their order, or all, sorted."""
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist")
    present = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes is None:
        if not present:
            raise DataError(f"image folder '{root}' has no class folders")
        return present
    missing = [c for c in classes if c not in present]
    if missing:
        raise DataError(f"image folder '{root}' lacks the class folders {missing[:5]}")
    return list(classes)


def class_files(root: Path, name: str) -> list[Path]:
    """A class folder's image files (any depth), in sorted order."""
    files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"class folder '{root / name}' holds no images")
    return files


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 (C, size, size): shorter side resized to ``size`` (bilinear, which
    PIL antialiases when shrinking), then the centre square."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                           Image.Resampling.BILINEAR)  # fmt: skip
            left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
            array = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot decode image '{path}' ({exc})") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def folder_source(
    root: str | Path,
    size: int,
    channels: int = 3,
    classes: list[str] | None = None,
    workers: int = 2,
) -> Source:
    """An ImageFolder tree, each class decoded by ``workers`` processes when it is read."""
    root = Path(root)
    names = folder_classes(root, classes)
    files = [class_files(root, name) for name in names]

    def read(c: int) -> np.ndarray:
        args = (files[c], [size] * len(files[c]), [channels] * len(files[c]))
        if workers <= 1:
            return np.stack([decode(*a) for a in zip(*args, strict=True)])
        with ProcessPoolExecutor(workers) as pool:
            return np.stack(list(pool.map(decode, *args, chunksize=32)))

    return Source(f"image folder {root} at {size} px", names, [len(f) for f in files],
                  (channels, size, size), read)  # fmt: skip
