"""Build the on-disk store of a data set's splits or of an ImageFolder tree, then open it (which
verifies it) and say what it holds."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.data.sources import folder_source
from src.data.store import build_store, open_store
from src.errors import ConfigError
from src.pipelines.components import load_data


def describe(path: Path) -> str:
    """One line: where a store is, how many images of how many classes, its size on disk."""
    store = open_store(path)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    n, classes = len(store.labels), len(store.manifest["class_names"])
    shape = "x".join(map(str, store.manifest["shape"]))
    return f"{path}: {n} images of {classes} classes, {shape}, {size:.1f} MiB"


def run_prepare(cfg: DictConfig) -> list[Path]:
    """Build what ``cfg`` names (reusing and checking what is built); returns the stores."""
    if cfg.folder is not None:
        folder = Path(cfg.folder)
        out = Path(cfg.out or Path(cfg.paths.data_dir) / "stores" / f"{folder.name}-{cfg.size}px")
        classes = list(cfg.classes) if cfg.classes is not None else None
        source = folder_source(folder, cfg.size, cfg.channels, classes, cfg.workers)
        paths = [build_store(source, out)]
    else:
        unknown = set(cfg.splits) - {"train", "test"}
        if unknown:
            raise ConfigError(f"splits are train and test, got {sorted(unknown)}")
        node = cfg.dataset
        if node.get("folder") is None:  # a registry data set: read (and so built) from stores
            node = OmegaConf.merge(node, {"store": True})
        paths = [load_data(node, train=split == "train")[1].path for split in cfg.splits]
    for path in paths:
        print(describe(path))
    return paths
