"""Data sets: registry, loading into uint8 pools, seeded per-class sampling."""

from __future__ import annotations

from pathlib import Path

from src.data.loaders import load_split
from src.data.pool import MappedPool, RealPool
from src.data.registry import DATASETS, DatasetInfo, get_dataset_info
from src.data.sources import tensor_source
from src.data.store import build_store, open_store


def load_pool(info: DatasetInfo, root: str | Path, train: bool, download: bool = True) -> RealPool:
    """Load one split of a data set as a RealPool."""
    images, labels = load_split(info, root, train=train, download=download)
    return RealPool(images, labels, info.num_classes, info.mean, info.std)


def store_path(root: str | Path, name: str, train: bool) -> Path:
    """Where the store of a registry data set's split lives under the data folder."""
    return Path(root) / "stores" / name / ("train" if train else "test")


def mapped_pool(
    info: DatasetInfo, root: str | Path, train: bool, download: bool = True
) -> MappedPool:
    """One split of a registry data set from its store, built from the split on first use."""
    path = store_path(root, info.name, train)
    if not (path / "manifest.json").is_file():
        images, labels = load_split(info, root, train=train, download=download)
        split = f"{info.name} {'train' if train else 'test'} split"
        build_store(tensor_source(split, images, labels, info.names(), info.mean, info.std), path)
        del images, labels
    store = open_store(path)
    images, labels = store.tensors()
    identity = "|".join([*store.manifest["class_sha256"], store.manifest["labels_sha256"]])
    return MappedPool(images, labels, info.num_classes, info.mean, info.std, identity)


def load_dataset(
    name: str, root: str | Path, download: bool = True, train: bool = True, store: bool = False
) -> tuple[DatasetInfo, RealPool]:
    """The registered data set ``name`` and one split of it (what ``conf/dataset`` builds);
    ``store``: read it from its on-disk store by memory mapping instead of holding it."""
    info = get_dataset_info(name)
    load = mapped_pool if store else load_pool
    return info, load(info, root, train=train, download=download)


__all__ = [
    "DATASETS",
    "DatasetInfo",
    "MappedPool",
    "RealPool",
    "get_dataset_info",
    "load_dataset",
    "load_pool",
    "load_split",
    "mapped_pool",
    "store_path",
]
