"""Data sets: registry, loading into uint8 pools, seeded per-class sampling."""

from __future__ import annotations

from pathlib import Path

from src.data.loaders import load_split
from src.data.pool import RealPool
from src.data.registry import DATASETS, DatasetInfo, get_dataset_info


def load_pool(info: DatasetInfo, root: str | Path, train: bool, download: bool = True) -> RealPool:
    """Load one split of a data set as a RealPool."""
    images, labels = load_split(info, root, train=train, download=download)
    return RealPool(images, labels, info.num_classes, info.mean, info.std)


def load_dataset(
    name: str, root: str | Path, download: bool = True, train: bool = True
) -> tuple[DatasetInfo, RealPool]:
    """The registered data set ``name`` and one split of it (what ``conf/dataset`` builds)."""
    info = get_dataset_info(name)
    return info, load_pool(info, root, train=train, download=download)


__all__ = [
    "DATASETS",
    "DatasetInfo",
    "RealPool",
    "get_dataset_info",
    "load_dataset",
    "load_pool",
    "load_split",
]
