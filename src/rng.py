"""Seeded generators: every random choice of a run flows from its seed through these."""

from __future__ import annotations

import zlib

import torch
from torch import Tensor


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the named random stream of a run (stable across processes)."""
    return (int(seed) * 0x9E3779B97F4A7C15 + zlib.crc32(stream.encode())) % (2**63 - 1)


def make_generator(seed: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded for ``stream`` of run ``seed``."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))


def class_generators(
    seed: int, stream: str, classes: Tensor | list[int], device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """One generator per class for ``stream``, seeded from (seed, stream, class id).

    Class c's draws then depend on neither the other classes nor how many a process holds,
    so a run split over ranks or jobs by class draws what one process draws.
    """
    return [make_generator(seed, f"{stream}/class{int(c)}", device) for c in classes]
