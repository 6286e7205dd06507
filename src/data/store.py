"""A class-indexed store on disk, read by memory mapping (docs/design.md, "The store").

A store is a folder:

- ``images.npy``: uint8 (N, C, H, W), class 0's rows, then class 1's, ... (numpy's .npy format:
  its header carries shape and dtype, and ``numpy.load(mmap_mode=...)`` maps it);
- ``labels.npy``: int64 (N,);
- ``manifest.json``: format, source, image shape, class names, counts, offsets, the
  normalisation statistics and the SHA-256 of every class's rows and of the labels. Written
  last: a folder without it is not a store.

A build writes into ``<path>.partial`` and renames it to ``<path>`` when complete; its
``progress.json`` lists the classes written so far (with their digests), so an interrupted
build goes on from the next class. Opening a store checks the files' shapes and sizes every
time and the digests once per state of the files (``verified.json`` holds the size and
modification time they were verified at).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from src.data.sources import Source
from src.errors import DataError
from src.io.atomic import atomic_path, atomic_write_text

STORE_FORMAT = "hdd-store/1"
MANIFEST, IMAGES, LABELS = "manifest.json", "images.npy", "labels.npy"
PROGRESS, VERIFIED = "progress.json", "verified.json"


def digest(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes (row-major)."""
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def plan_of(source: Source) -> dict:
    """What a build of ``source`` will write (a partial build of another plan is refused)."""
    return {"source": source.description, "class_names": source.class_names,
            "counts": source.counts, "shape": list(source.shape)}  # fmt: skip


def build_store(
    source: Source, path: str | Path, log: Callable[[str], None] | None = print
) -> Path:
    """Write ``source`` into a store at ``path`` (resuming an interrupted build); returns it.
    ``log`` is told of each class written (the build's progress)."""
    log = log or (lambda _: None)
    path, partial = Path(path), Path(f"{path}.partial")
    if (path / MANIFEST).is_file():
        return path
    plan = plan_of(source)
    done = _start(partial, plan)
    counts = source.counts
    offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()
    mode = "r+" if (partial / IMAGES).is_file() else "w+"
    images = np.lib.format.open_memmap(partial / IMAGES, mode=mode, dtype=np.uint8,
                                       shape=(offsets[-1], *source.shape))  # fmt: skip
    for c, name in enumerate(source.class_names):
        if str(c) in done:
            continue
        started = time.perf_counter()
        rows = source.read(c)
        if rows.shape != (counts[c], *source.shape) or rows.dtype != np.uint8:
            raise DataError(f"class {name} read as {rows.dtype} {rows.shape}, planned "
                            f"uint8 {(counts[c], *source.shape)}")  # fmt: skip
        images[offsets[c] : offsets[c + 1]] = rows
        images.flush()
        done[str(c)] = digest(rows)
        atomic_write_text(partial / PROGRESS, json.dumps({"plan": plan, "done": done}))
        log(f"store: class {c + 1}/{len(counts)} ({name}): {counts[c]} images, "
            f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    del images
    _finish(source, partial, plan, done, offsets)
    os.replace(partial, path)
    log(f"store: wrote {path}")
    return path


def _start(partial: Path, plan: dict) -> dict:
    """The classes a partial build of the same plan has written ({} for a new build)."""
    progress = partial / PROGRESS
    if progress.is_file():
        state = json.loads(progress.read_text())
        if state["plan"] != plan:
            raise DataError(f"'{partial}' is a partial store of other data: remove it")
        return state["done"]
    if partial.exists():
        shutil.rmtree(partial)  # stopped before its first class: nothing to keep
    partial.mkdir(parents=True)
    return {}


def _finish(source: Source, partial: Path, plan: dict, done: dict, offsets: list[int]) -> None:
    """Labels, statistics and the manifest of a build whose every class is written."""
    labels = np.repeat(np.arange(len(source.counts), dtype=np.int64), source.counts)
    with atomic_path(partial / LABELS) as tmp, open(tmp, "wb") as f:
        np.save(f, labels)
    images = np.load(partial / IMAGES, mmap_mode="r")
    mean, std = (source.mean, source.std) if source.mean else channel_stats(images, offsets)
    manifest = plan | {
        "format": STORE_FORMAT, "offsets": offsets, "mean": list(mean), "std": list(std),
        "class_sha256": [done[str(c)] for c in range(len(source.counts))],
        "labels_sha256": digest(labels),
    }  # fmt: skip
    atomic_write_text(partial / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    (partial / PROGRESS).unlink()


def channel_stats(images: np.ndarray, offsets: list[int]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the pixel values in [0, 1], one class in memory at a time."""
    total, squares, n = 0.0, 0.0, 0
    for start, stop in zip(offsets[:-1], offsets[1:], strict=True):
        block = images[start:stop].astype(np.float64) / 255.0
        total = total + block.sum(axis=(0, 2, 3))
        squares = squares + (block**2).sum(axis=(0, 2, 3))
        n += block.shape[0] * block.shape[2] * block.shape[3]
    mean = total / n
    return mean.tolist(), np.sqrt(squares / n - mean**2).tolist()


@dataclass
class Store:
    """An opened store: its manifest, images (memory-mapped) and labels."""

    path: Path
    manifest: dict
    images: np.ndarray
    labels: np.ndarray

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as a uint8 tensor over the mapped file (nothing read yet) and the labels."""
        return torch.from_numpy(self.images), torch.from_numpy(self.labels)


def open_store(path: str | Path) -> Store:
    """Open a store, refusing a damaged or incomplete one with a DataError of one line."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        hint = " (an interrupted build: run it again)" if Path(f"{path}.partial").exists() else ""
        raise DataError(f"'{path}' is not a store: no {MANIFEST}{hint}")
    manifest = json.loads((path / MANIFEST).read_text())
    if manifest.get("format") != STORE_FORMAT:
        raise DataError(f"'{path}' is a store of format {manifest.get('format')!r}, "
                        f"not {STORE_FORMAT}")  # fmt: skip
    n = manifest["offsets"][-1]
    images = _mapped(path / IMAGES, (n, *manifest["shape"]), np.uint8)
    labels = _mapped(path / LABELS, (n,), np.int64)
    _verify(path, manifest, images, labels)
    return Store(path, manifest, images, labels)


def _mapped(file: Path, shape: tuple, dtype) -> np.ndarray:
    """A .npy file mapped copy-on-write, after checking its header against ``shape`` and its
    size against the header (a truncated file is refused)."""
    try:
        with open(file, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            header = read(f)  # (shape, fortran order, dtype)
            offset = f.tell()
    except (OSError, ValueError) as exc:
        raise DataError(f"store file '{file}' is unreadable ({exc})") from None
    if tuple(header[0]) != tuple(shape) or np.dtype(header[2]) != np.dtype(dtype):
        raise DataError(f"store file '{file}' holds {header[2]} {header[0]}, "
                        f"the manifest says {np.dtype(dtype)} {tuple(shape)}")  # fmt: skip
    expected = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
    if file.stat().st_size != expected:
        raise DataError(f"store file '{file}' has {file.stat().st_size} bytes, expected "
                        f"{expected}: truncated or damaged")  # fmt: skip
    array = np.load(file, mmap_mode="c")
    if hasattr(array, "_mmap") and hasattr(mmap, "MADV_RANDOM"):
        # Steps gather scattered rows: read-ahead around each would fill memory with the
        # neighbours of every drawn image.
        array._mmap.madvise(mmap.MADV_RANDOM)
    return array


def _verify(path: Path, manifest: dict, images: np.ndarray, labels: np.ndarray) -> None:
    """Check every class's digest, once per state of the files."""
    state = {name: [(path / name).stat().st_size, (path / name).stat().st_mtime_ns]
             for name in (IMAGES, LABELS, MANIFEST)}  # fmt: skip
    stamp = path / VERIFIED
    if stamp.is_file() and json.loads(stamp.read_text()) == state:
        return
    offsets = manifest["offsets"]
    if digest(labels) != manifest["labels_sha256"]:
        raise DataError(f"store '{path}': the labels do not match their checksum")
    for c, expected in enumerate(manifest["class_sha256"]):
        if digest(images[offsets[c] : offsets[c + 1]]) != expected:
            name = manifest["class_names"][c]
            raise DataError(f"store '{path}': class {c} ({name}) does not match its checksum")
    try:
        atomic_write_text(stamp, json.dumps(state))
    except OSError:
        print(f"store '{path}' verified (read-only: verified again next time)", file=sys.stderr)
