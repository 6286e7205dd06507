"""DM and DM+HDD: one outer iteration of distribution matching per training step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from src.errors import ConfigError
from src.methods.base import SyntheticSetModule
from src.models import init_weights_

# torch.compile of the embedding costs about a minute on a CPU and saves ~40% of a step
# (bench/results/suite.md); below this many iterations it does not pay off.
COMPILE_AUTO_MIN_ITERATIONS = 1000


class DistillModule(SyntheticSetModule):
    """Distribution matching (docs/method.md §2-3), a freshly initialised frozen network per step.

    The network is one module re-initialised in place from the run's generator
    each step. DM and DM+HDD differ only in ``loss``.
    """

    def __init__(self, *args: Any, compile_net: bool | str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if compile_net not in (True, False, "auto"):
            raise ConfigError(
                f"method.compile_net must be true, false or auto, got {compile_net!r}"
            )
        self.compile_net = compile_net
        self.net: nn.Module | None = None
        self.embed: Callable[[Tensor], Tensor] | None = None

    def setup(self, stage: str) -> None:
        """Generators, the real pool on the device, and the (frozen) embedding network."""
        super().setup(stage)
        if self.net is None:
            self.net = self.net_factory().to(self.device).requires_grad_(False)
        self.embed = torch.compile(self.net.embed) if self.use_compile() else self.net.embed

    def use_compile(self) -> bool:
        """``compile_net``, with ``auto`` on for runs long enough to repay the ~1 minute compile."""
        if self.compile_net == "auto":
            return self.iterations >= COMPILE_AUTO_MIN_ITERATIONS
        return bool(self.compile_net)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD on the synthetic images (lr_img, momentum 0.5)."""
        return torch.optim.SGD([self.syn_images], lr=self.lr_img, momentum=self.momentum)

    def class_losses(self) -> Tensor:
        """One outer iteration's per-class matching losses (C,) under a fresh network."""
        # The compiled embedding reads the re-initialised weights: parameters are graph inputs.
        return self.match(init_weights_(self.net, self.gen_net), embed=self.embed)[0]

    def outer_iteration(self, iteration: int) -> Tensor:
        """One outer iteration; a non-finite loss stops the run before the images change."""
        loss = self.class_losses().sum()
        self.check_finite(loss)
        self.log("train/loss", loss.detach().float(), prog_bar=True)
        return loss
