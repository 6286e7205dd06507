"""Read a data set's split into memory as uint8 images (N, C, H, W) and int64 labels."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from src.data.registry import DatasetInfo
from src.errors import DataError

# Debian's dataset-fashion-mnist package: the offline source of real data.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes into an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable IDX file ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(shape))} values")
    return body.reshape(shape)


def _find_idx(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _load_idx_pair(folders: list[Path], train: bool) -> tuple[Tensor, Tensor] | None:
    prefix = "train" if train else "t10k"
    images = _find_idx(folders, f"{prefix}-images-idx3-ubyte")
    labels = _find_idx(folders, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    x = torch.from_numpy(read_idx(images).copy()).unsqueeze(1)
    y = torch.from_numpy(read_idx(labels).astype(np.int64))
    if len(x) != len(y):
        raise DataError(f"{images} and {labels} hold different numbers of samples")
    return x, y


def _torchvision(
    info: DatasetInfo, root: Path, train: bool, download: bool
) -> tuple[Tensor, Tensor]:
    import torchvision.datasets as tvd

    kinds = {
        "mnist": tvd.MNIST,
        "fashion_mnist": tvd.FashionMNIST,
        "cifar10": tvd.CIFAR10,
        "cifar100": tvd.CIFAR100,
    }
    try:
        if info.name == "svhn":
            ds = tvd.SVHN(str(root), split="train" if train else "test", download=download)
            return torch.from_numpy(ds.data), torch.from_numpy(ds.labels.astype(np.int64))
        ds = kinds[info.name](str(root), train=train, download=download)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ...
        raise DataError(
            f"dataset '{info.name}' is not under {root} and could not be "
            f"{'downloaded' if download else 'read (download=false)'} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
            "place its files there or run once on a machine with network"
        ) from None
    data = torch.as_tensor(np.asarray(ds.data))
    # MNIST-like sets store (N, H, W), CIFAR-like ones (N, H, W, C).
    data = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
    return data.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)


def _tinyimagenet(root: Path, train: bool) -> tuple[Tensor, Tensor]:
    from PIL import Image

    base = root / "tiny-imagenet-200"
    if not (base / "wnids.txt").is_file():
        raise DataError(
            f"dataset 'tinyimagenet' not found: expected {base}/wnids.txt "
            "(the standard tiny-imagenet-200 folder layout)"
        )
    wnids = (base / "wnids.txt").read_text().split()
    index = {w: i for i, w in enumerate(wnids)}
    files: list[tuple[Path, int]] = []
    if train:
        for w in wnids:
            files += [(p, index[w]) for p in sorted((base / "train" / w / "images").glob("*"))]
    else:
        for line in (base / "val" / "val_annotations.txt").read_text().splitlines():
            name, w = line.split("\t")[:2]
            files.append((base / "val" / "images" / name, index[w]))
    images = torch.empty(len(files), 3, 64, 64, dtype=torch.uint8)
    for i, (path, _) in enumerate(files):
        with Image.open(path) as im:
            images[i] = torch.from_numpy(np.asarray(im.convert("RGB"))).permute(2, 0, 1)
    return images, torch.tensor([c for _, c in files], dtype=torch.int64)


def _random(info: DatasetInfo, train: bool) -> tuple[Tensor, Tensor]:
    """Uniform random uint8 images, class-ordered: 5000 (train) or 1000 (test) per class."""
    per_class = 5000 if train else 1000
    g = torch.Generator().manual_seed(0 if train else 1)
    n = per_class * info.num_classes
    images = torch.randint(
        0, 256, (n, info.channels, *info.im_size), generator=g, dtype=torch.uint8
    )
    return images, torch.arange(info.num_classes).repeat_interleave(per_class)


def load_split(
    info: DatasetInfo, root: str | Path, train: bool, download: bool = True
) -> tuple[Tensor, Tensor]:
    """Load the train or test split of ``info`` as (uint8 images NCHW, int64 labels)."""
    root = Path(root)
    if info.name.startswith("random_"):
        x, y = _random(info, train)
    elif info.name == "tinyimagenet":
        x, y = _tinyimagenet(root, train)
    elif info.name == "fashion_mnist" and (
        found := _load_idx_pair([root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST], train)
    ):
        x, y = found
    else:
        x, y = _torchvision(info, root, train, download)
    if tuple(x.shape[1:]) != (info.channels, *info.im_size):
        raise DataError(
            f"dataset '{info.name}' has images of shape {tuple(x.shape[1:])}, "
            f"expected {(info.channels, *info.im_size)}"
        )
    return x, y
