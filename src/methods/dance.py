"""DANCE (Zhang et al., IJCAI 2024): matching on experts interpolated between their start and end.

Per outer iteration (docs/method.md §12.2), with a pool of experts trained on the real data
(``src/methods/experts.py``):
1. clamp the synthetic images to the valid pixel range;
2. pick an expert i and a mix l ~ U[0, 1): the matching network has the weights
   ``l * theta_i(start) + (1 - l) * theta_i(end)``;
3. ``match`` term: the run's loss between real and synthetic features of every class under
   that network (DM's squared mean distance for DANCE, HDD's centroid distance for
   DANCE+HDD); one backward, then one image step per class;
4. ``calibration`` term, ``calib_steps`` times: ``calib_weight`` x the cross-entropy of each
   class's (augmented) synthetic images under expert i's end weights; one backward, then one
   image step per class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.checks import Problems
from src.data.factorize import expand
from src.matching.terms import total
from src.methods.base import SyntheticSetModule
from src.methods.experts import ExpertPool, expert_protocol, interpolate, pool_for
from src.rng import make_generator


class DANCEModule(SyntheticSetModule):
    """DANCE and DANCE+HDD: interpolated experts, the matching loss and expert calibration."""

    label = "DANCE"
    variant_keys = ("calib_steps", "calib_weight")

    def __init__(
        self,
        *args: Any,
        experts: Mapping[str, Any] | None = None,
        calib_steps: int = 1,
        calib_weight: float = 1.0,
        lr_img_per_ipc: float = 0.01,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "dance")
        if kwargs.get("lr_img") is None:  # the release's rule: lr_img = 0.01 x IPC
            kwargs["lr_img"] = lr_img_per_ipc * kwargs["ipc"]
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False
        settings = dict(experts or {})
        self.experts_dataset = str(settings.pop("dataset", "data"))
        self.expert_protocol = expert_protocol(settings)
        self.calib_steps = calib_steps
        self.calib_weight = float(calib_weight)
        self.net_mid: nn.Module | None = None
        self.net_end: nn.Module | None = None

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], p: Problems) -> None:
        """The shared settings (lr_img null: lr_img_per_ipc), the calibration and the experts."""
        settings = dict(settings)
        if settings.get("lr_img") is None:
            p.positive(settings.get("lr_img_per_ipc"), "method.lr_img_per_ipc")
            settings["lr_img"] = settings.get("lr_img_per_ipc")
        super().check_settings(settings, p)
        p.int_at_least(settings.get("calib_steps"), "method.calib_steps", 0)
        p.in_range(settings.get("calib_weight"), "method.calib_weight", 0, float("inf"), "l")
        experts = {k: v for k, v in (settings.get("experts") or {}).items() if k != "dataset"}
        p.attempt(lambda: expert_protocol(experts))

    def setup(self, stage: str) -> None:
        """Generators, the expert pool (trained on first use) and the two networks."""
        super().setup(stage)
        self.gen_pick = make_generator(self.seed, "pick")
        pool = self.expert_pool()
        pool.ensure_trained(self.pool, self.device)
        end = self.expert_protocol.epochs
        n = self.expert_protocol.num_experts
        self.starts = [_to(pool.state(i, 0), self.device) for i in range(n)]
        self.ends = [_to(pool.state(i, end), self.device) for i in range(n)]
        if self.net_mid is None:
            self.net_mid = self.net_factory().to(self.device).requires_grad_(False)
            self.net_end = self.net_factory().to(self.device).requires_grad_(False)

    def expert_pool(self) -> ExpertPool:
        """The run's pool of experts: the run's network and real pool, this protocol."""
        key = f"{self.experts_dataset}-{len(self.pool)}"
        return pool_for(self.data_dir, key, self.net_factory, self.expert_protocol)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD on the synthetic images (lr_img, momentum)."""
        return torch.optim.SGD([self.syn_images], lr=self.lr_img, momentum=self.momentum)

    def generators(self) -> dict[str, torch.Generator]:
        """The shared generators plus the one that picks experts and mixes."""
        return super().generators() | {"pick": self.gen_pick}

    def clamp_images(self) -> None:
        """Keep the synthetic pixels in [0, 1] (in the normalised space the images live in)."""
        mean, std = self.pool.mean, self.pool.std  # on the module's device since setup
        with torch.no_grad():
            self.syn_images.clamp_(min=(0 - mean) / std, max=(1 - mean) / std)

    def pick_networks(self) -> None:
        """Load an interpolated expert into ``net_mid`` and its end weights into ``net_end``."""
        i = int(torch.randint(len(self.ends), (), generator=self.gen_pick))
        mix = float(torch.rand((), generator=self.gen_pick))
        self.net_mid.load_state_dict(interpolate(self.starts[i], self.ends[i], mix))
        self.net_end.load_state_dict(self.ends[i])

    def calibration(self) -> Tensor:
        """Per-class cross-entropy (C,) of the augmented synthetic images under ``net_end``."""
        syn, labels = expand(self.syn_images, self.syn_labels, self.factor)
        x = self.augment(syn, self.gen_augment, groups=labels, num_groups=self.num_classes)
        ce = F.cross_entropy(self.net_end(x), labels, reduction="none")
        return self.calib_weight * ce.view(self.num_classes, -1).mean(dim=1)

    def outer_iteration(self, iteration: int) -> Tensor:
        """One DANCE iteration: matching steps, then calibration steps, one per class each."""
        self.clamp_images()
        self.pick_networks()
        terms, _ = self.match(self.net_mid)
        losses = total(terms)
        loss = losses.sum()
        self.check_finite(loss)
        self.step_per_class(losses)
        calibration = torch.zeros(self.num_classes, device=self.device)
        for _ in range(self.calib_steps):
            ce = self.calibration()
            self.check_finite(ce.sum())
            self.step_per_class(ce)
            calibration = calibration + ce.detach()
        self.log_terms({**terms, "calibration": calibration})
        total_loss = loss.detach() + calibration.sum()
        self.log("train/loss", total_loss.float(), prog_bar=True)
        return total_loss

    def describe(self) -> dict[str, Any]:
        """The shared record, the calibration and the expert protocol."""
        return super().describe() | {
            "calib_steps": self.calib_steps,
            "calib_weight": self.calib_weight,
            "lr_img": self.lr_img,
            "experts": {"dataset": self.experts_dataset, **self.expert_protocol.__dict__},
        }


def _to(state: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in state.items()}
