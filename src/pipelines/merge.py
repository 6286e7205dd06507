"""Class shards into one distilled set: the files of the jobs of a ``classes=`` sweep (or the
ranks of a class-sharded DDP run) become the set a one-process run writes."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from src.errors import ConfigError
from src.io import load_distilled, save_distilled
from src.io.checkpoint import EXECUTION_SETTINGS, setting_differences
from src.io.distilled import DistilledSet
from src.pipelines.run import DISTILLED_FILE
from src.pipelines.study import tensor_digest

# Settings a shard may differ in from the others (besides how it was executed).
SHARD_SETTINGS = (*EXECUTION_SETTINGS, "classes", "eval")


def shard_file(path: Path) -> Path:
    """A shard's distilled file: ``path`` itself or the one in run directory ``path``."""
    return path / DISTILLED_FILE if path.is_dir() else path


def merge_sets(parts: list[tuple[Tensor, Tensor]], num_classes: int) -> tuple[Tensor, Tensor]:
    """Shards' (images, labels), each holding whole classes, as one class-ordered set."""
    parts = sorted(parts, key=lambda part: int(part[1].min()))
    seen = [c for _, labels in parts for c in labels.unique().tolist()]
    if len(seen) != len(set(seen)):
        twice = sorted({c for c in seen if seen.count(c) > 1})
        raise ConfigError(f"classes {twice[:10]} are in more than one shard")
    missing = sorted(set(range(num_classes)) - set(seen))
    if missing:
        raise ConfigError(
            f"no shard holds classes {missing[:10]}{' ...' if len(missing) > 10 else ''}"
        )
    images = torch.cat([images for images, _ in parts])
    labels = torch.cat([labels for _, labels in parts])
    if not bool((labels[1:] >= labels[:-1]).all()):
        raise ConfigError("the shards' classes interleave: each shard must hold a block of classes")
    return images, labels


def merged_metadata(shards: dict[Path, DistilledSet]) -> dict:
    """The first shard's metadata for the whole set, with where each part came from; the
    shards must come from one run's settings (same seed, method, loss, data, iterations)."""
    (first_path, first), *rest = shards.items()
    for path, shard in rest:
        changed = setting_differences(
            first.meta.get("config", {}), shard.meta.get("config", {}), ignore=SHARD_SETTINGS
        )
        changed += [
            k for k in ("iteration", "dataset", "ipc") if shard.meta.get(k) != first.meta.get(k)
        ]
        if changed:
            raise ConfigError(
                f"shard '{path}' was made with other settings than '{first_path}' "
                f"({', '.join(sorted(set(changed))[:6])})"
            )
    meta = copy.deepcopy(first.meta)
    meta["config"]["classes"] = None
    meta["merged_from"] = [
        {
            "file": str(path),
            "classes": shard.labels.unique().tolist(),
            "sha256": tensor_digest(shard.images),
        }
        for path, shard in shards.items()
    ]
    meta.pop("format", None)
    return meta


def merge_shards(out: Path, paths: list[Path]) -> Path:
    """Write ``out/distilled.safetensors`` from the shards at ``paths``; returns its path."""
    if len(paths) < 1:
        raise ConfigError("name at least one shard (a run directory or a distilled file)")
    shards = {shard_file(p): load_distilled(shard_file(p)) for p in paths}
    meta = merged_metadata(shards)
    num_classes = int(meta["num_classes"])
    images, labels = merge_sets([(s.images, s.labels) for s in shards.values()], num_classes)
    target = out if out.suffix == ".safetensors" else out / DISTILLED_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    save_distilled(target, images, labels, meta)
    print(
        f"merged {len(shards)} shards ({num_classes} classes, {len(labels)} images) into "
        f"{target}; set sha256 {tensor_digest(images)}\n"
        f"evaluate it: python -m src.evaluate distilled={target}"
    )
    return target


def rank_shard(out: Path, rank: int) -> Path:
    """Where a class-sharded rank writes its classes' set."""
    return out / "shards" / f"rank{rank}.safetensors"


def gather_rank_shards(
    out: Path, trainer: L.Trainer, images: Tensor, labels: Tensor, meta: dict
) -> tuple[Tensor, Tensor]:
    """Under class-sharded DDP: every rank writes its classes' set, rank 0 reads them all back
    as the whole set (files rather than a collective: the whole set never sits on a device)."""
    save_distilled(rank_shard(out, trainer.global_rank), images, labels, meta)
    trainer.strategy.barrier("class shards written")
    if not trainer.is_global_zero:
        return images, labels
    parts = [load_distilled(rank_shard(out, r)) for r in range(trainer.world_size)]
    return merge_sets([(p.images, p.labels) for p in parts], int(meta["num_classes"]))
