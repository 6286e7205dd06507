"""NCFM (Wang et al., CVPR 2025): characteristic-function matching on DANCE's experts.

One outer iteration (docs/method.md §12.5), with DANCE's harness (``src/methods/dance.py``):
1. clamp the synthetic images; pick an expert i and l ~ U[0, 1): the matching network is
   ``l * theta_i(start) + (1 - l) * theta_i(end)``;
2. ``cf`` term: 300 x the characteristic-function discrepancy of each class's L2-normalised
   real and synthetic embeddings (``src/matching/characteristic.py``); with ``mean_weight``
   > 0 also ``match``, ``mean_weight`` x the run's loss on the raw embeddings (HDD's centroid
   distance with ``loss=lorentz``: HDD as an added term); one backward, one step per class;
3. ``calibration``: the cross-entropy of each class's synthetic images under expert i's end;
4. the image optimiser is AdamW, its learning rate halved when the iteration's mean loss has
   not improved for ``plateau_patience`` iterations (the release's ReduceLROnPlateau).
With ``real_batch: first`` every iteration matches the same first ``batch_real`` images of each
class, as the release's loader does; ``random`` draws them afresh, as DM does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from src.checks import Problems
from src.matching.characteristic import CharacteristicTerm
from src.matching.terms import FeatureTerm, LossTerm
from src.methods.dance import DANCEModule
from src.rng import make_generator

OPTIMIZERS = ("adamw", "sgd")
REAL_BATCHES = ("first", "random")


class NCFMModule(DANCEModule):
    """NCFM, and NCFM with an added mean or centroid term (``mean_weight`` > 0)."""

    label = "NCFM"
    variant_keys = ("mean_weight", "num_freqs", "calib_steps", "calib_weight")

    def __init__(
        self,
        *args: Any,
        num_freqs: int = 4096,
        alpha: float = 0.5,
        beta: float = 0.5,
        cf_scale: float = 300.0,
        mean_weight: float = 0.0,
        optimizer: str = "adamw",
        weight_decay: float = 5e-4,
        plateau_patience: int = 500,
        real_batch: str = "first",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "ncfm")
        self.cf_settings = {"num_freqs": num_freqs, "alpha": alpha, "beta": beta,
                            "scale": cf_scale}  # fmt: skip
        self.mean_weight = float(mean_weight)
        self.optimizer_name, self.weight_decay = optimizer, float(weight_decay)
        self.plateau_patience, self.real_batch = int(plateau_patience), real_batch
        super().__init__(*args, **kwargs)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], p: Problems) -> None:
        """DANCE's settings, the frequencies, the weights, the optimiser and the real batch."""
        super().check_settings(settings, p)
        p.int_at_least(settings.get("num_freqs"), "method.num_freqs", 1)
        for key in ("alpha", "beta", "mean_weight", "weight_decay"):
            p.in_range(settings.get(key), f"method.{key}", 0, float("inf"), "l")
        p.positive(settings.get("cf_scale"), "method.cf_scale")
        p.one_of(settings.get("optimizer"), "method.optimizer", OPTIMIZERS)
        p.int_at_least(settings.get("plateau_patience"), "method.plateau_patience", 0)
        p.one_of(settings.get("real_batch"), "method.real_batch", REAL_BATCHES)

    @classmethod
    def check_loss(cls, settings: Mapping[str, Any], loss_part: str, p: Problems) -> None:
        """The run's loss is NCFM's added term: a loss off DM's would do nothing at weight 0."""
        if loss_part and not settings.get("mean_weight"):
            p.add(
                f"NCFM takes the run's loss ({loss_part}) as an added term weighted by "
                "method.mean_weight, which is 0 (NCFM as released): set method.mean_weight > 0"
            )

    def own_terms(self) -> dict[str, FeatureTerm]:
        """The CF discrepancy, and the run's loss times ``mean_weight`` when that is > 0."""
        terms: dict[str, FeatureTerm] = {"cf": CharacteristicTerm(**self.cf_settings)}
        if self.mean_weight > 0:
            terms["match"] = LossTerm(self.loss, weight=self.mean_weight)
        return terms

    def setup(self, stage: str) -> None:
        """DANCE's setup, the frequency generator and, for ``first``, the fixed real batch."""
        super().setup(stage)
        self.gen_freq = make_generator(self.seed, "freq", self.device)
        self.terms["cf"].generator = self.gen_freq

    def real_batch_indices(self) -> tuple[Tensor, Tensor]:
        """``first``: the first ``batch_real`` images of every class (padding weighted 0) at
        every iteration, the release's loader; ``random``: DM's draw."""
        if self.real_batch == "random":
            return super().real_batch_indices()
        b = min(self.batch_real, int(self.pool.counts.max()))
        weights = (torch.arange(b) < self.pool.counts.unsqueeze(1)).float()
        return self.pool.class_index[:, :b], weights

    def generators(self) -> dict[str, torch.Generator]:
        """DANCE's generators and the one that draws the frequencies."""
        return super().generators() | {"freq": self.gen_freq}

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (or SGD) on the images, halved on a plateau of the iteration's loss."""
        params = [self.syn_images]
        if self.optimizer_name == "adamw":
            opt = torch.optim.AdamW(params, lr=self.lr_img, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=self.lr_img, momentum=self.momentum,
                                  weight_decay=self.weight_decay)  # fmt: skip
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=self.plateau_patience
        )
        return {"optimizer": opt, "lr_scheduler": plateau}

    def outer_iteration(self, iteration: int) -> Tensor:
        """DANCE's iteration with NCFM's terms, then the plateau scheduler's step."""
        loss = super().outer_iteration(iteration)
        self.lr_schedulers().step(float(loss) / self.num_classes)
        return loss

    def describe(self) -> dict[str, Any]:
        """DANCE's record, the CF settings, the added term's weight and the optimiser."""
        return super().describe() | {
            "mean_weight": self.mean_weight,
            "optimizer": self.optimizer_name,
            "weight_decay": self.weight_decay,
            "plateau_patience": self.plateau_patience,
            "real_batch": self.real_batch,
        }
