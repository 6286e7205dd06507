"""The distilled-set file: safetensors (images, labels) + JSON metadata, saved atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from src.errors import DistilledFileError
from src.io.atomic import atomic_path

# 2: the method and the loss each record a nested node (``method: {name, factor, ...}``,
# ``loss: {name, ...}``); 1 (still read) had ``method`` as a name and the loss's keys flat.
FORMAT = "hdd-distilled/2"
READABLE_FORMATS = ("hdd-distilled/1", FORMAT)
_META_KEY = "hdd"
_V1_LOSS_KEYS = ("k", "scale", "lift", "max_radius", "squared")


@dataclass
class DistilledSet:
    """Synthetic images (N, C, H, W) float32, labels (N,) int64 and their metadata.

    Read the method's and loss's records through ``factor``, ``method`` and ``loss``, which
    know both metadata formats.
    """

    images: Tensor
    labels: Tensor
    meta: dict = field(default_factory=dict)

    @property
    def method(self) -> dict:
        """The method's record (at least ``name`` and ``factor``)."""
        method = self.meta.get("method")
        if isinstance(method, dict):
            return method
        return {"name": method, "factor": self.meta.get("factor", 1)}

    @property
    def factor(self) -> int:
        """Images per stored image along each side (1: not factorised)."""
        return int(self.method.get("factor", 1))

    @property
    def loss(self) -> dict:
        """The loss's record: ``name`` and its settings (empty when the file has none)."""
        loss = self.meta.get("loss")
        if isinstance(loss, dict):
            return loss
        flat = {k: self.meta[k] for k in _V1_LOSS_KEYS if k in self.meta}
        return ({"name": loss} if loss is not None else {}) | flat


def metadata_path(path: str | Path) -> Path:
    """The JSON file written beside a distilled set."""
    return Path(path).with_suffix(".json")


def save_distilled(path: str | Path, images: Tensor, labels: Tensor, meta: dict) -> Path:
    """Save a distilled set atomically as ``path`` (.safetensors) and its JSON beside it."""
    path = Path(path)
    meta = {"format": FORMAT, **meta}
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    tensors = {
        "images": images.detach().to("cpu", torch.float32).contiguous(),
        "labels": labels.detach().to("cpu", torch.int64).contiguous(),
    }
    # Both files are fully written before either replaces its old version.
    with atomic_path(metadata_path(path)) as tmp_json, atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: text})
        tmp_json.write_text(text + "\n")
    return path


def load_distilled(path: str | Path) -> DistilledSet:
    """Load and validate a distilled set; any problem is a DistilledFileError."""
    path = Path(path)
    if not path.is_file():
        raise DistilledFileError(f"distilled set '{path}' does not exist")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise DistilledFileError(f"'{path}' is not a readable safetensors file ({exc})") from None
    if set(tensors) != {"images", "labels"}:
        raise DistilledFileError(
            f"'{path}' must hold exactly the tensors 'images' and 'labels', found {sorted(tensors)}"
        )
    images, labels = tensors["images"], tensors["labels"]
    if images.dtype != torch.float32 or images.ndim != 4:
        raise DistilledFileError(
            f"'{path}': images must be float32 (N, C, H, W), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
        raise DistilledFileError(
            f"'{path}': labels must be int64 of shape ({images.shape[0]},), "
            f"got {labels.dtype} {tuple(labels.shape)}"
        )
    if not torch.isfinite(images).all():
        raise DistilledFileError(f"'{path}': images contain NaN or inf")
    try:
        meta = json.loads(header[_META_KEY])
    except (KeyError, json.JSONDecodeError):
        raise DistilledFileError(f"'{path}' has no valid '{_META_KEY}' metadata") from None
    if meta.get("format") not in READABLE_FORMATS:
        raise DistilledFileError(
            f"'{path}' has format {meta.get('format')!r}, expected one of "
            f"{', '.join(READABLE_FORMATS)}"
        )
    return DistilledSet(images, labels, meta)


def check_matches(
    ds: DistilledSet,
    channels: int,
    im_size: tuple[int, int],
    num_classes: int,
    path: str | Path = "",
    dataset: str = "",
) -> None:
    """Raise DistilledFileError unless the set's shape and labels fit the data set."""
    expected = (channels, *im_size)
    if tuple(ds.images.shape[1:]) != expected:
        raise DistilledFileError(
            f"distilled set {path} has images of shape {tuple(ds.images.shape[1:])}, "
            f"but dataset '{dataset or '?'}' needs {expected} (the set was distilled from "
            f"'{ds.meta.get('dataset', '?')}'; evaluate it on that dataset)"
        )
    if len(ds.labels) and (int(ds.labels.min()) < 0 or int(ds.labels.max()) >= num_classes):
        raise DistilledFileError(f"distilled set {path} has labels outside [0, {num_classes})")
