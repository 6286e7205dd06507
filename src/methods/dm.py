"""DM and DM+HDD: one outer iteration of distribution matching per training step."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from src.checks import Problems
from src.errors import ConfigError
from src.matching.terms import total
from src.methods.base import SyntheticSetModule
from src.models import init_weights_

# torch.compile of the embedding costs about a minute on a CPU and saves ~40% of a step
# (bench/results/suite.md); below this many iterations it does not pay off.
COMPILE_AUTO_MIN_ITERATIONS = 1000


class DistillModule(SyntheticSetModule):
    """Distribution matching (docs/method.md §2-3), a freshly initialised frozen network per step.

    The network is one module re-initialised in place from the run's generator
    each step. DM and DM+HDD differ only in ``loss``. A method that matches other features
    of the same fresh network (DataDAM) subclasses this one and overrides ``extractor``
    and ``own_terms``.
    """

    label = "DM"
    class_separable = True  # a fresh random network per step: classes never meet

    def __init__(self, *args: Any, compile_net: bool | str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if compile_net not in (True, False, "auto"):
            raise ConfigError(
                f"method.compile_net must be true, false or auto, got {compile_net!r}"
            )
        self.compile_net = compile_net
        self.net: nn.Module | None = None
        self.extract: Callable[[Tensor], dict[str, Tensor]] | None = None

    def setup(self, stage: str) -> None:
        """Generators, the real pool on the device, the (frozen) network and its extraction."""
        super().setup(stage)
        if self.net is None:
            self.net = self.net_factory().to(self.device).requires_grad_(False)
        extract = self.extractor(self.net)
        self.extract = torch.compile(extract) if self.use_compile() else extract

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], p: Problems) -> None:
        """The shared settings, and compile_net."""
        super().check_settings(settings, p)
        if "compile_net" in settings:
            p.one_of(settings["compile_net"], "method.compile_net", (True, False, "auto"))

    def use_compile(self) -> bool:
        """``compile_net``, with ``auto`` on for runs long enough to repay the ~1 minute compile."""
        if self.compile_net == "auto":
            return self.iterations >= COMPILE_AUTO_MIN_ITERATIONS
        return bool(self.compile_net)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD on the synthetic images (lr_img, momentum 0.5)."""
        return torch.optim.SGD([self.syn_images], lr=self.lr_img, momentum=self.momentum)

    def class_terms(self) -> dict[str, Tensor]:
        """One outer iteration's per-class loss terms (each (C,)) under a fresh network."""
        # The compiled extraction reads the re-initialised weights: parameters are graph inputs.
        return self.match(init_weights_(self.net, self.gen_net), extract=self.extract)[0]

    def class_losses(self) -> Tensor:
        """One outer iteration's per-class losses (C,): the sum of the terms."""
        return total(self.class_terms())

    def outer_iteration(self, iteration: int) -> Tensor:
        """One outer iteration; a non-finite loss stops the run before the images change."""
        terms = self.class_terms()
        loss = total(terms).sum()
        self.check_finite(loss)
        self.log_terms(terms)
        self.log("train/loss", loss.detach().float(), prog_bar=True)
        return loss
