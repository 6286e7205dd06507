"""The interface every matching loss implements: the loss, its label and its metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from src.checks import constructor_defaults


class MatchingLoss(nn.Module):
    """Per-class loss between real and synthetic feature sets.

    ``forward(real, real_weights, syn)`` takes real features (C, B, D) with
    weights (C, B) (0 marks padding where a class has fewer than B samples) and
    synthetic features (C, S, D); it returns the per-class losses (C,).
    A loss never knows where its features came from.

    A loss also says how it is named and recorded (docs/extending.md):
    ``name`` (its metadata key), ``label_suffix`` (added to the method's paper name:
    "" for the method's own loss, "+HDD" for HDD's), ``settings`` (its hyper-parameters)
    and ``variant`` (the label text of settings off its reference). Its constructor is its
    settings check: a bad value raises ConfigError, which validation reports before any
    data are loaded.
    """

    name: ClassVar[str] = "base"
    label_suffix: ClassVar[str] = ""
    # The config node whose values are this loss's released settings (e.g. the method's
    # ``hdd`` node); None: the constructor's defaults are.
    reference_node: ClassVar[str | None] = None

    def forward(self, real: Tensor, real_weights: Tensor, syn: Tensor) -> Tensor:
        """Per-class matching losses, shape (C,)."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The hyper-parameters that define this loss (the constructor's arguments)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What a distilled set's metadata records of the loss: its name and settings."""
        return {"name": self.name, **self.settings()}

    def variant(self, reference: Mapping[str, Any] | None = None) -> str:
        """``" (key value, ...)"`` for the settings that differ from ``reference`` (the
        ``reference_node``'s values; by default the constructor's defaults), else ``""``."""
        reference = dict(reference) if reference is not None else constructor_defaults(type(self))
        changed = [
            f"{key} {_text(value)}"
            for key, value in self.settings().items()
            if key in reference and reference[key] != value
        ]
        return f" ({', '.join(changed)})" if changed else ""

    def geometry_lift(self) -> dict[str, Any] | None:
        """The lift under which this loss sees features (None: it does not lift them)."""
        return None


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
