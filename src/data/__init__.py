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


__all__ = ["DATASETS", "DatasetInfo", "RealPool", "get_dataset_info", "load_pool", "load_split"]
