"""What every distillation method shares: the synthetic set and one batched matching pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from src.augment import DSA
from src.data import RealPool
from src.data.factorize import expand, pack
from src.errors import ConfigError, NonFiniteLossError
from src.matching import MatchingLoss
from src.rng import make_generator

INITS = ("real", "noise")


def initial_synthetic_set(
    pool: RealPool, ipc: int, init: str, generator: torch.Generator, factor: int = 1
) -> tuple[Tensor, Tensor]:
    """Images (C*ipc, ch, H, W) float32 and class-ordered labels (C*ipc,) to start from.

    With ``factor`` f > 1 each image packs f^2 distinct real images of its class, downscaled.
    """
    if ipc < 1:
        raise ConfigError(f"ipc must be >= 1, got {ipc}")
    if init not in INITS:
        raise ConfigError(f"unknown init '{init}'; choose one of: {', '.join(INITS)}")
    labels = torch.arange(pool.num_classes).repeat_interleave(ipc)
    per_class = ipc * factor * factor
    indices = pool.random_per_class(per_class, generator)  # also checks ipc vs class sizes
    if init == "real":
        images = pack(pool.get(indices).cpu(), factor)
    else:
        shape = (len(labels), *pool.images.shape[1:])
        images = torch.randn(shape, generator=generator)
    return images.contiguous(), labels


class IterationLoader(DataLoader):
    """A loader of step numbers: distillation draws its own batches from the real pool."""

    def __init__(self, iterations: int) -> None:
        super().__init__(range(iterations), batch_size=None, shuffle=False)


class SyntheticSetModule(L.LightningModule):
    """Holds the synthetic images (an ``nn.Parameter``) and matches them to the real pool.

    Subclasses decide how an outer iteration runs (which networks, which steps);
    ``match`` is the shared batched pass: draw ``batch_real`` real images per class,
    give each class one Siamese DSA transform shared by its real and synthetic
    images, embed all classes at once (real without gradient) and return the
    per-class losses.
    """

    def __init__(
        self,
        pool: RealPool,
        net_factory: Callable[[], nn.Module],
        loss: MatchingLoss,
        augment: DSA,
        ipc: int,
        iterations: int,
        batch_real: int = 256,
        lr_img: float = 1.0,
        momentum: float = 0.5,
        init: str = "real",
        seed: int = 0,
        name: str = "dm",
        factor: int = 1,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.net_factory = net_factory
        self.loss = loss
        self.augment = augment
        self.ipc = ipc
        self.iterations = iterations
        self.batch_real = batch_real
        self.lr_img = lr_img
        self.momentum = momentum
        self.seed = seed
        self.method_name = name
        self.factor = factor
        images, labels = initial_synthetic_set(
            pool, ipc, init, make_generator(seed, "init"), factor
        )
        self.syn_images = nn.Parameter(images)
        self.completed_iterations = 0
        self.register_buffer("syn_labels", labels)

    @property
    def num_classes(self) -> int:
        """Number of classes of the data set."""
        return self.pool.num_classes

    def setup(self, stage: str) -> None:
        """Move the real pool next to the module and create the run's generators."""
        self.pool.to(self.device)
        self.gen_sample = make_generator(self.seed, "sample")
        self.gen_augment = make_generator(self.seed, "augment")
        self.gen_net = make_generator(self.seed, "net", self.device)
        # DSA group of every image of a step: class c's real images, then the synthetic set.
        per_class = min(self.batch_real, int(self.pool.counts.max()))
        real_groups = torch.arange(self.num_classes).repeat_interleave(per_class)
        syn_groups = self.syn_labels.cpu().repeat_interleave(self.factor**2)
        self.groups = torch.cat([real_groups, syn_groups]).to(self.device)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Count finished outer iterations (optimiser steps per iteration vary by method)."""
        self.completed_iterations = batch_idx + 1

    def train_dataloader(self) -> DataLoader:
        """One item per outer iteration."""
        return IterationLoader(self.iterations)

    def match(self, net: nn.Module, with_logits: bool = False) -> tuple[Tensor, Tensor | None]:
        """Per-class matching losses (C,) under ``net``, and the synthetic logits if asked."""
        idx, weights = self.pool.sample(self.batch_real, self.gen_sample)
        n_classes, per_class = idx.shape
        real = self.pool.get(idx)
        syn, _ = expand(self.syn_images, self.syn_labels, self.factor)
        x = self.augment(
            torch.cat([real, syn]), self.gen_augment, groups=self.groups, num_groups=n_classes
        )
        with torch.no_grad():
            real_feat = net.embed(x[: len(real)])
        syn_feat = net.embed(x[len(real) :])
        losses = self.loss(
            real_feat.view(n_classes, per_class, -1),
            weights.to(self.device),
            syn_feat.view(n_classes, len(syn) // n_classes, -1),
        )
        return losses, net.classifier(syn_feat) if with_logits else None

    def check_finite(self, loss: Tensor) -> None:
        """Stop the run, before any image update, when the loss is NaN or inf."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the matching loss became {loss.item()} at iteration {self.completed_iterations}; "
                "the synthetic set was not updated (lower lr_img or check the loss settings)"
            )

    def synthetic_set(self) -> tuple[Tensor, Tensor]:
        """The stored synthetic images and labels (detached, on the CPU, not expanded)."""
        return self.syn_images.detach().cpu().clone(), self.syn_labels.cpu().clone()
