"""Differentiable Siamese Augmentation for dataset distillation."""

from src.augment.dsa import ALLOWED_OPS, DSA, parse_strategy


def build_augment(strategy: str, **params: float) -> DSA:
    """Build a DSA augmenter from a strategy string and op strengths (flip, scale, ...)."""
    return DSA(strategy, **params)


__all__ = ["ALLOWED_OPS", "DSA", "build_augment", "parse_strategy"]
