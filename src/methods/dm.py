"""DM and DM+HDD: one outer iteration of distribution matching per training step."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from src.augment import DSA
from src.data import RealPool
from src.errors import NonFiniteLossError
from src.matching import MatchingLoss
from src.methods.synthetic import initial_synthetic_set
from src.models import init_weights_
from src.rng import make_generator


class IterationLoader(DataLoader):
    """A loader of step numbers: distillation draws its own batches from the real pool."""

    def __init__(self, iterations: int) -> None:
        super().__init__(range(iterations), batch_size=None, shuffle=False)


class DistillModule(L.LightningModule):
    """Learns the synthetic images (an ``nn.Parameter``) by distribution matching (SPEC 2-3).

    Each step: re-initialise the frozen embedding network from the run's
    generator, draw ``batch_real`` real images per class, apply one Siamese DSA
    transform per class to that class's real and synthetic images, embed all
    classes in one batched forward (real without gradient, synthetic with),
    and take an SGD step on the images. DM and DM+HDD differ only in ``loss``.
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
    ) -> None:
        super().__init__()
        self.method_name = name
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
        images, labels = initial_synthetic_set(pool, ipc, init, make_generator(seed, "init"))
        self.syn_images = nn.Parameter(images)
        self.register_buffer("syn_labels", labels)
        self.net: nn.Module | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes of the data set."""
        return self.pool.num_classes

    def setup(self, stage: str) -> None:
        """Move the real pool next to the module and build the generators there."""
        self.pool.to(self.device)
        self.gen_sample = make_generator(self.seed, "sample")
        self.gen_augment = make_generator(self.seed, "augment")
        self.gen_net = make_generator(self.seed, "net", self.device)
        if self.net is None:
            self.net = self.net_factory().to(self.device).requires_grad_(False)
        # DSA group of every image of a step: real images of class c, then the synthetic set.
        per_class = min(self.batch_real, int(self.pool.counts.max()))
        real_groups = torch.arange(self.num_classes).repeat_interleave(per_class)
        self.groups = torch.cat([real_groups, self.syn_labels.cpu()]).to(self.device)

    def train_dataloader(self) -> DataLoader:
        """One item per outer iteration."""
        return IterationLoader(self.iterations)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD on the synthetic images (lr_img, momentum 0.5)."""
        return torch.optim.SGD([self.syn_images], lr=self.lr_img, momentum=self.momentum)

    def class_losses(self) -> Tensor:
        """One outer iteration's per-class matching losses (C,), differentiable in the images."""
        net = init_weights_(self.net, self.gen_net)
        idx, weights = self.pool.sample(self.batch_real, self.gen_sample)
        n_classes, per_class = idx.shape
        real = self.pool.get(idx)
        x = self.augment(
            torch.cat([real, self.syn_images]),
            self.gen_augment,
            groups=self.groups,
            num_groups=n_classes,
        )
        with torch.no_grad():
            real_feat = net.embed(x[: len(real)])
        syn_feat = net.embed(x[len(real) :])
        return self.loss(
            real_feat.view(n_classes, per_class, -1),
            weights.to(self.device),
            syn_feat.view(n_classes, self.ipc, -1),
        )

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """One outer iteration; a non-finite loss stops the run before the images change."""
        loss = self.class_losses().sum()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the matching loss became {loss.item()} at iteration {self.global_step}; "
                "the synthetic set was not updated (lower lr_img or check the loss settings)"
            )
        self.log("train/loss", loss.detach().float(), prog_bar=True)
        return loss

    def synthetic_set(self) -> tuple[Tensor, Tensor]:
        """The current synthetic images and labels (detached, on the CPU)."""
        return self.syn_images.detach().cpu().clone(), self.syn_labels.cpu().clone()
