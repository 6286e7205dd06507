"""Data sets: registry, loading into uint8 pools, seeded per-class sampling."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from src.data.loaders import load_split
from src.data.pool import MappedPool, RealPool
from src.data.registry import DATASETS, DatasetInfo, get_dataset_info
from src.data.sources import folder_classes, folder_source, tensor_source
from src.data.store import Store, build_store, open_store


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
    return pool_of(open_store(path), info)


def pool_of(store: Store, info: DatasetInfo) -> MappedPool:
    """A pool over an opened store, normalised with ``info``'s statistics."""
    images, labels = store.tensors()
    identity = "|".join([*store.manifest["class_sha256"], store.manifest["labels_sha256"]])
    return MappedPool(images, labels, info.num_classes, info.mean, info.std, identity, store.path)


def folder_info(
    name: str, folder: str | Path, size: int, channels: int, classes, mean, std, splits: dict
) -> DatasetInfo:
    """An ImageFolder data set's description from its config: classes as listed, or every class
    folder of the training split; statistics as given (None: measured when the store is built)."""
    names = folder_classes(Path(folder) / splits["train"], list(classes) if classes else None)
    unknown = (0.5,) * channels  # until the training store has measured them
    return DatasetInfo(name, channels, (size, size), len(names), tuple(mean or unknown),
                       tuple(std or unknown), tuple(names))  # fmt: skip


def load_folder_dataset(
    name: str,
    folder: str | Path,
    root: str | Path,
    size: int,
    channels: int = 3,
    classes: list[str] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    splits: dict | None = None,
    workers: int = 2,
    train: bool = True,
    download: bool = False,
) -> tuple[DatasetInfo, MappedPool]:
    """An ImageFolder data set (``<folder>/<split>/<class>/<image>``) read from its stores
    under ``<root>/stores/<name>-<size>px/``, each built from the tree on first use
    (``download`` is unused: a folder is read where it lies)."""
    splits = dict(splits or {"train": "train", "test": "val"})
    info = folder_info(name, folder, size, channels, classes, mean, std, splits)
    stores = Path(root) / "stores" / f"{name}-{size}px"
    for split in ("train",) if train else ("train", "test"):  # the training statistics too
        if not (stores / split / "manifest.json").is_file():
            tree = Path(folder) / splits[split]
            source = folder_source(tree, size, channels, list(info.class_names), workers)
            build_store(source, stores / split)
    measured = open_store(stores / "train").manifest
    info = replace(info, mean=tuple(mean or measured["mean"]), std=tuple(std or measured["std"]),
                   min_class_size=min(measured["counts"]))  # fmt: skip
    return info, pool_of(open_store(stores / ("train" if train else "test")), info)


def dataset_info(node) -> DatasetInfo:
    """The description of the data set a ``conf/dataset`` node builds (nothing is loaded)."""
    if node.get("folder") is None:
        return get_dataset_info(node.name)
    splits = dict(node.get("splits") or {"train": "train"})
    fields = ("name", "folder", "size", "channels", "classes", "mean", "std")
    return folder_info(*(node.get(k) for k in fields), splits)


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
    "dataset_info",
    "get_dataset_info",
    "load_folder_dataset",
    "load_dataset",
    "load_pool",
    "load_split",
    "mapped_pool",
    "store_path",
]
