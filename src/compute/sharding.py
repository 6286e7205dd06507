"""Class-sharded distillation: which classes a job or a rank distills, and the DDP strategy
whose ranks hold different classes (no gradient is averaged: class c's images depend only on
class c's real images and the shared random networks, docs/design.md "Class shards").

``classes=`` picks a job's classes: null (all), a list of class ids, or ``"i/n"``, the i-th of
n contiguous blocks (``numpy.array_split``'s sizes). Under ``trainer=ddp_classes`` (or
``ddp_cpu_classes``) each rank then takes the ``rank``-th of ``world`` blocks of the job's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

from src.errors import CheckpointError, ConfigError

SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
STRATEGY_NAME = "ddp_classes"


def block(classes: list[int], index: int, parts: int) -> list[int]:
    """The ``index``-th of ``parts`` contiguous blocks of ``classes`` (sizes differ by <= 1)."""
    size, extra = divmod(len(classes), parts)
    start = index * size + min(index, extra)
    return classes[start : start + size + (index < extra)]


def job_classes(spec: Any, num_classes: int) -> list[int]:
    """The classes ``classes=`` names: all (null), a list of ids, or block ``"i/n"``."""
    every = list(range(num_classes))
    if spec is None:
        return every
    if isinstance(spec, str):
        match = SHARD.match(spec)
        if not match or not 0 <= int(match[1]) < int(match[2]) <= num_classes:
            raise ConfigError(
                f"classes must be null, a list of class ids or 'i/n' with 0 <= i < n <= "
                f"{num_classes}, got {spec!r}"
            )
        return block(every, int(match[1]), int(match[2]))
    ids = [int(c) for c in spec]
    if not ids or sorted(set(ids)) != ids or ids[0] < 0 or ids[-1] >= num_classes:
        raise ConfigError(
            f"classes must be distinct increasing class ids in [0, {num_classes}), got {ids}"
        )
    return ids


def shards_classes(trainer_cfg: Any) -> bool:
    """Whether the trainer splits the classes over its ranks."""
    return str(trainer_cfg.get("strategy")) == STRATEGY_NAME


def world_size(trainer_cfg: Any) -> int:
    """Processes of the run: devices x nodes (devices -1: every visible GPU)."""
    devices = int(trainer_cfg.get("devices", 1))
    if devices == -1:
        devices = max(torch.cuda.device_count(), 1)
    return devices * int(trainer_cfg.get("num_nodes", 1))


def process_rank(trainer_cfg: Any) -> int:
    """This process's global rank, read as Lightning's environments will set it (torchrun:
    RANK; SLURM: SLURM_PROCID; Lightning's own launcher: NODE_RANK x devices + LOCAL_RANK).
    ``ClassShardCheck`` checks it against the rank Lightning gives it."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        return int(os.environ["SLURM_PROCID"])
    per_node = world_size(trainer_cfg) // int(trainer_cfg.get("num_nodes", 1))
    return int(os.environ.get("NODE_RANK", 0)) * per_node + int(os.environ.get("LOCAL_RANK", 0))


def run_classes(classes_spec: Any, trainer_cfg: Any, num_classes: int) -> list[int]:
    """The classes this process distills: its job's, then its rank's block of those."""
    mine = job_classes(classes_spec, num_classes)
    if shards_classes(trainer_cfg):
        world = world_size(trainer_cfg)
        if world > len(mine):
            raise ConfigError(f"{world} ranks cannot share {len(mine)} classes: use fewer devices")
        mine = block(mine, process_rank(trainer_cfg), world)
    return mine


def rank_file(path: str | Path, rank: int) -> Path:
    """Rank ``rank``'s copy of a per-rank file (rank 0 keeps the plain name)."""
    path = Path(path)
    return path if rank == 0 else path.with_name(f"{path.name}.rank{rank}")


class ClassShardedDDP(DDPStrategy):
    """DDP processes whose ranks distill different classes: the module is not wrapped (its
    synthetic images differ in shape by rank and no gradient is shared), every rank writes its
    own checkpoint (``rank_file``) and reads it back on resume."""

    shards_classes = True
    strategy_name = STRATEGY_NAME

    def configure_ddp(self) -> None:
        """Keep the module as it is: nothing is averaged across ranks."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], filepath: str | Path, storage_options: Any = None
    ) -> None:
        """Every rank saves its classes' state, to its own file."""
        target = rank_file(filepath, self.global_rank)
        self.checkpoint_io.save_checkpoint(checkpoint, target, storage_options=storage_options)

    def load_checkpoint(self, checkpoint_path: str | Path, weights_only: bool | None = None):
        """Every rank reads its own file."""
        path = rank_file(checkpoint_path, self.global_rank)
        return self.checkpoint_io.load_checkpoint(path, weights_only=weights_only)


StrategyRegistry.register(
    STRATEGY_NAME,
    ClassShardedDDP,
    description="DDP whose ranks distill different classes (src/compute/sharding.py)",
)


class ClassShardCheck(Callback):
    """Under ``ClassShardedDDP``: each rank holds the block of the job's classes Lightning's
    rank gives it, and a resumed run's ranks read checkpoints of one iteration."""

    def __init__(self, job: list[int]) -> None:
        self.job = job

    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        """Refuse a rank whose classes were chosen for another rank."""
        expected = block(self.job, trainer.global_rank, trainer.world_size)
        if pl_module.classes.tolist() != expected:
            raise ConfigError(
                f"rank {trainer.global_rank} of {trainer.world_size} holds classes "
                f"{pl_module.classes.tolist()[:5]}..., its block is {expected[:5]}...: the "
                "launcher's rank variables (RANK, LOCAL_RANK, NODE_RANK) disagree with Lightning's"
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Every rank continues from the same iteration."""
        done = torch.tensor([pl_module.completed_iterations], dtype=torch.int64)
        seen = trainer.strategy.all_gather(done.to(pl_module.device)).flatten().tolist()
        if len(set(seen)) > 1:
            raise CheckpointError(
                f"the ranks' checkpoints are from different iterations ({seen}): resume from "
                "the previous.ckpt files, or start again"
            )
