"""NCFM's characteristic-function discrepancy between real and synthetic features.

For features f (unit L2 norm per sample, as NCFM normalises them) and frequencies t ~ N(0, I):
``phi(t) = E[exp(i t.f)] = E[cos t.f] + i E[sin t.f]`` (the empirical characteristic
function), and per frequency

- amplitude ``A(t) = (|phi_r(t)| - |phi_s(t)|)^2``,
- phase ``P(t) = 2 (|phi_r| |phi_s| - Re phi_r Re phi_s - Im phi_r Im phi_s)``
  ``= 2 |phi_r| |phi_s| (1 - cos(theta_r - theta_s))``,

so ``A + P = |phi_r - phi_s|^2``. The loss of a class is ``scale * mean_t sqrt(alpha A +
beta P)`` (the square root per frequency, then the mean), with the release's alpha = beta = 0.5
and scale 300 (docs/method.md §12.5).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from src.matching.terms import EMBED, ClassFeatures, FeatureTerm

PHASE_FLOOR = 1e-12  # the release clamps the phase term here, so its square root has a gradient


def empirical_cf(features: Tensor, weights: Tensor, freqs: Tensor) -> tuple[Tensor, Tensor]:
    """``(sum_i w_i cos(t.f_i), sum_i w_i sin(t.f_i)) / sum_i w_i`` for every frequency t:
    features (B, D), weights (B,), freqs (T, D) -> real and imaginary parts, each (T,)."""
    angles = features @ freqs.T  # (B, T)
    w = (weights / weights.sum()).to(angles.dtype)
    return w @ angles.cos(), w @ angles.sin()


def cf_discrepancy(
    real: tuple[Tensor, Tensor], syn: tuple[Tensor, Tensor], alpha: float, beta: float
) -> Tensor:
    """``mean_t sqrt(alpha A(t) + beta max(P(t), 1e-12))`` of two characteristic functions."""
    (re_r, im_r), (re_s, im_s) = real, syn
    amp_r, amp_s = torch.sqrt(re_r**2 + im_r**2), torch.sqrt(re_s**2 + im_s**2)
    amplitude = (amp_r - amp_s) ** 2
    phase = (2 * (amp_r * amp_s - re_r * re_s - im_r * im_s)).clamp(min=PHASE_FLOOR)
    return torch.sqrt(alpha * amplitude + beta * phase).mean()


class CharacteristicTerm(FeatureTerm):
    """NCFM's term: the CF discrepancy of each class's L2-normalised embeddings, with
    ``num_freqs`` frequencies t ~ N(0, I) drawn afresh for every class from ``generator``
    (which the method sets, so the draws follow the run's seed and resume with it)."""

    name = "cf"

    def __init__(
        self,
        num_freqs: int = 4096,
        alpha: float = 0.5,
        beta: float = 0.5,
        scale: float = 300.0,
        normalize: bool = True,
        kind: str = EMBED,
    ) -> None:
        super().__init__(weight=scale)
        self.num_freqs, self.alpha, self.beta = int(num_freqs), float(alpha), float(beta)
        self.normalize, self.kind = bool(normalize), kind
        self.generator: torch.Generator | None = None

    def per_class(self, features: ClassFeatures) -> Tensor:
        """The discrepancy of every class (C,); one frequency draw per class, as released."""
        real, syn = features.real[self.kind].flatten(2), features.syn[self.kind].flatten(2)
        if self.normalize:
            real, syn = F.normalize(real, dim=-1), F.normalize(syn, dim=-1)
        syn_weights = torch.ones(syn.shape[1], dtype=syn.dtype, device=syn.device)
        out = []
        for c in range(real.shape[0]):
            freqs = torch.randn(
                self.num_freqs, real.shape[-1], generator=self.generator,
                device=real.device, dtype=real.dtype,
            )  # fmt: skip
            real_cf = empirical_cf(real[c], features.real_weights[c], freqs)
            out.append(cf_discrepancy(real_cf, empirical_cf(syn[c], syn_weights, freqs),
                                      self.alpha, self.beta))  # fmt: skip
        return torch.stack(out)

    def describe(self) -> dict[str, Any]:
        """The frequencies, the two weights, the scale and the normalisation."""
        return {
            "name": self.name, "num_freqs": self.num_freqs, "alpha": self.alpha,
            "beta": self.beta, "scale": self.weight, "normalize": self.normalize,
        }  # fmt: skip
