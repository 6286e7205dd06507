"""DM and DM+HDD: one outer iteration of distribution matching per training step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from src.methods.base import SyntheticSetModule
from src.models import init_weights_


class DistillModule(SyntheticSetModule):
    """Distribution matching (SPEC 2-3) with a freshly initialised frozen network per step.

    The network is one module re-initialised in place from the run's generator
    each step. DM and DM+HDD differ only in ``loss``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.net: nn.Module | None = None

    def setup(self, stage: str) -> None:
        """Generators, the real pool on the device, and the (frozen) embedding network."""
        super().setup(stage)
        if self.net is None:
            self.net = self.net_factory().to(self.device).requires_grad_(False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD on the synthetic images (lr_img, momentum 0.5)."""
        return torch.optim.SGD([self.syn_images], lr=self.lr_img, momentum=self.momentum)

    def class_losses(self) -> Tensor:
        """One outer iteration's per-class matching losses (C,) under a fresh network."""
        return self.match(init_weights_(self.net, self.gen_net))[0]

    def outer_iteration(self, iteration: int) -> Tensor:
        """One outer iteration; a non-finite loss stops the run before the images change."""
        loss = self.class_losses().sum()
        self.check_finite(loss)
        self.log("train/loss", loss.detach().float(), prog_bar=True)
        return loss
