"""The interface every matching loss implements."""

from __future__ import annotations

from torch import Tensor, nn


class MatchingLoss(nn.Module):
    """Per-class loss between real and synthetic feature sets.

    ``forward(real, real_weights, syn)`` takes real features (C, B, D) with
    weights (C, B) (0 marks padding where a class has fewer than B samples) and
    synthetic features (C, S, D); it returns the per-class losses (C,).
    A loss never knows where its features came from.
    """

    name: str = "base"

    def forward(self, real: Tensor, real_weights: Tensor, syn: Tensor) -> Tensor:
        """Per-class matching losses, shape (C,)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """The hyper-parameters stored in a distilled set's metadata."""
        return {"loss": self.name}
