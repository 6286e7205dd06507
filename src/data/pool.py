"""The real data of a run, held once as uint8 with per-class indices and seeded samplers."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

from src.errors import ConfigError


class RealPool:
    """Real images (uint8, N x C x H x W) and labels, normalised on the fly.

    Storing uint8 takes a quarter of float32's memory; the pool can live on the
    accelerator and every batch is gathered and normalised there.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        num_classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"RealPool stores uint8 images, got {images.dtype}")
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.num_classes = num_classes
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        order = torch.argsort(self.labels.cpu(), stable=True)
        self.counts = torch.bincount(self.labels.cpu(), minlength=num_classes)
        # Row c lists class c's sample indices, padded with its first index.
        self.class_index = torch.zeros(num_classes, int(self.counts.max()), dtype=torch.int64)
        start = 0
        for c, n in enumerate(self.counts.tolist()):
            if n:
                rows = order[start : start + n]
                self.class_index[c, :n] = rows
                self.class_index[c, n:] = rows[0]
            start += n
        self.classes = torch.arange(num_classes)  # the classes this pool serves (with_classes)

    @property
    def device(self) -> torch.device:
        """Where the images live."""
        return self.images.device

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device | str) -> RealPool:
        """Move the images (and normalisation constants) to ``device``; returns self."""
        self.images = self.images.to(device)
        self.labels = self.labels.to(device)
        self.mean = self.mean.to(device)
        self.std = self.std.to(device)
        return self

    def nbytes(self) -> int:
        """Memory held by the stored images."""
        return self.images.numel() * self.images.element_size()

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 images -> float32 normalised with the data set's mean and std."""
        return (images.to(torch.float32) / 255.0 - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        """Normalised float images -> [0, 1] for display."""
        return (x * self.std.to(x.device) + self.mean.to(x.device)).clamp(0.0, 1.0)

    def get(self, indices: Tensor) -> Tensor:
        """Normalised float32 images at ``indices`` (any shape; result is flattened to N)."""
        return self.normalize(self.images[indices.reshape(-1).to(self.device)])

    def min_class_count(self) -> int:
        """Size of the smallest class."""
        return int(self.counts.min())

    def sample(
        self, batch_per_class: int, generator: torch.Generator | Sequence[torch.Generator]
    ) -> tuple[Tensor, Tensor]:
        """Draw up to ``batch_per_class`` distinct samples of every served class.

        Returns indices (C, B) and weights (C, B): 1 for drawn samples, 0 for the padding of
        classes with fewer than B samples; B is capped by the largest class of the whole data
        set, so a shard pads as the whole pool does. ``generator``: one CPU generator for all
        classes, or one per served class (each class's draw then uses its own alone).
        """
        b = min(batch_per_class, int(self.counts.max()))
        counts = self.counts[self.classes]
        # Padding columns sort last, so the first n_c of each row are a random subset.
        if isinstance(generator, torch.Generator):
            keys = torch.rand(self.class_index.shape, generator=generator)
            valid = torch.arange(self.class_index.shape[1]) < counts.unsqueeze(1)
            keys = torch.where(valid, keys, torch.full_like(keys, 2.0))
        else:
            keys = self._keys_each(counts, generator)
        cols = keys.topk(b, dim=1, largest=False, sorted=True).indices
        indices = self.class_index.gather(1, cols)
        weights = (cols < counts.unsqueeze(1)).to(torch.float32)
        return indices, weights

    def _keys_each(self, counts: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
        """Sort keys with one generator per served class (rand(n_c) each), padding at 2."""
        if len(generators) != len(counts):
            raise ValueError(f"{len(generators)} generators for {len(counts)} classes")
        keys = torch.full(self.class_index.shape, 2.0)
        for row, (n, g) in enumerate(zip(counts.tolist(), generators, strict=True)):
            keys[row, :n] = torch.rand(n, generator=g)
        return keys

    def random_per_class(
        self, n: int, generator: torch.Generator | Sequence[torch.Generator]
    ) -> Tensor:
        """``n`` distinct random sample indices of every served class, shape (C, n)."""
        if n > self.min_class_count():
            raise ConfigError(
                f"{n} real images per class are needed (ipc x factor^2), but the smallest "
                f"class has {self.min_class_count()}: choose a smaller ipc"
            )
        indices, _ = self.sample(n, generator)
        return indices[:, :n]

    def with_classes(self, classes: Sequence[int] | Tensor) -> RealPool:
        """The same pool serving only ``classes`` (sorted global ids, as
        ``src.compute.sharding.job_classes`` checks them): sampling, the initial set and a
        method's classes are those; the images are shared, not copied."""
        classes = torch.as_tensor(list(classes), dtype=torch.int64)
        pool = copy.copy(self)
        pool.class_index = self.class_index[torch.searchsorted(self.classes, classes)]
        pool.classes = classes
        return pool

    def content_digest(self) -> str:
        """SHA-1 of the images and labels (what features computed from the pool depend on)."""
        digest = hashlib.sha1(self.images.cpu().numpy().tobytes())
        digest.update(self.labels.cpu().numpy().tobytes())
        return digest.hexdigest()

    def subset(self, keep: Tensor) -> RealPool:
        """A new pool holding only the samples at indices ``keep`` (e.g. after pruning)."""
        keep = keep.to(self.images.device)
        pool = RealPool(self.images[keep], self.labels[keep], self.num_classes, (0.0,), (1.0,))
        pool.mean, pool.std = self.mean, self.std
        return pool


class MappedPool(RealPool):
    """A RealPool over a memory-mapped store (src/data/store.py): the images stay in the file
    and on the CPU; each batch reads only the rows it gathers and is normalised on the device
    the pool was sent to. ``identity``: the store's checksums, standing for its content;
    ``path``: the store's folder."""

    def __init__(self, images: Tensor, labels: Tensor, num_classes: int, mean, std,
                 identity: str, path=None) -> None:  # fmt: skip
        super().__init__(images, labels, num_classes, mean, std)
        self.identity, self.path = identity, path
        self._device = torch.device("cpu")

    @property
    def device(self) -> torch.device:
        """Where batches are normalised (the images themselves stay mapped)."""
        return self._device

    def to(self, device: torch.device | str) -> MappedPool:
        """Send batches, labels and normalisation constants to ``device``; returns self."""
        self._device = torch.device(device)
        self.labels, self.mean, self.std = (
            t.to(device) for t in (self.labels, self.mean, self.std)
        )
        return self

    def nbytes(self) -> int:
        """Memory held by stored images: none, they are read from the file as needed."""
        return 0

    def get(self, indices: Tensor) -> Tensor:
        """Normalised float32 images at ``indices``, read from the file (only those rows)."""
        rows = self.images[indices.reshape(-1).cpu()]
        return self.normalize(rows.to(self._device))

    def content_digest(self) -> str:
        """The store's checksums (reading the images again would cost a pass over the file)."""
        return self.identity

    def subset(self, keep: Tensor) -> RealPool:
        """An in-memory pool of the kept samples (read in file order)."""
        keep = keep.cpu().sort().values
        pool = RealPool(
            self.images[keep], self.labels.cpu()[keep], self.num_classes, (0.0,), (1.0,)
        )
        pool.mean, pool.std = self.mean.cpu(), self.std.cpu()
        return pool
