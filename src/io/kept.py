"""The kept real-sample indices of a pruned run, saved beside its distilled set."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from src.errors import DistilledFileError
from src.io.atomic import atomic_path

KEPT_FILE = "kept_indices.safetensors"


def kept_path(distilled: str | Path) -> Path:
    """Where the kept indices of a distilled set live."""
    return Path(distilled).with_name(KEPT_FILE)


def save_kept_indices(path: str | Path, kept: Tensor) -> None:
    """Save int64 indices (safetensors, atomic)."""
    with atomic_path(path) as tmp:
        save_file({"indices": kept.to(torch.int64).contiguous()}, str(tmp))


def load_kept_indices(path: str | Path) -> Tensor | None:
    """The saved indices, or None when there is no file; a bad file is a DistilledFileError."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise DistilledFileError(f"'{path}' is not a readable safetensors file ({exc})") from None
    indices = tensors.get("indices")
    if indices is None or indices.dtype != torch.int64 or indices.ndim != 1:
        raise DistilledFileError(f"'{path}' must hold one int64 vector 'indices'")
    return indices
