"""Scores that say how much a distilled set adds over a random real subset of the same size.

Accuracies come in percent, one per evaluation network. The random real subset and the
distilled set are trained with the same evaluation seed per network (same initial weights,
shuffling and augmentation draws), so differences are taken network by network and then
summarised like accuracies (mean and population std). The two normalised scores follow
DD-Ranking (Li et al., "DD-Ranking: Rethinking the Evaluation of Dataset Distillation",
2025), which works on accuracies as fractions and maps a weighted difference ``x`` in
[-1, 1] onto [0, 100] by ``(e^x - e^-1) / (e - e^-1)``.
"""

from __future__ import annotations

import math

from src.evaluation.protocol import EvalResult


def _paired(a: list[float], b: list[float]) -> list[tuple[float, float]]:
    if len(a) != len(b):
        raise ValueError(
            f"paired scores need as many networks on both sides ({len(a)} vs {len(b)})"
        )
    return list(zip(a, b, strict=True))


def normalised(x: float) -> float:
    """DD-Ranking's map of a difference of fractions onto percent: (e^x - e^-1)/(e - e^-1)."""
    return 100.0 * (math.exp(x) - math.exp(-1.0)) / (math.e - math.exp(-1.0))


def improvement_over_random(distilled: list[float], random_real: list[float]) -> EvalResult:
    """IOR per network: acc(distilled) - acc(random real subset), in points."""
    return EvalResult([d - r for d, r in _paired(distilled, random_real)])


def augmentation_robust_score(
    distilled: list[float],
    random_real: list[float],
    distilled_no_aug: list[float],
    random_real_no_aug: list[float],
    weight: float = 0.5,
) -> EvalResult:
    """ARS per network: normalised(w IOR_aug + (1 - w) IOR_no-aug), IORs as fractions."""
    with_aug = improvement_over_random(distilled, random_real).accuracies
    without = improvement_over_random(distilled_no_aug, random_real_no_aug).accuracies
    return EvalResult(
        [normalised((weight * a + (1 - weight) * b) / 100) for a, b in _paired(with_aug, without)]
    )


def whole_set_gap(distilled: list[float], whole_set: float) -> EvalResult:
    """HLR per network: acc(whole training set) - acc(distilled), in points."""
    return EvalResult([whole_set - d for d in distilled])


def label_robust_score(
    distilled: list[float], random_real: list[float], whole_set: float, weight: float = 0.5
) -> EvalResult:
    """LRS per network: normalised(w IOR - (1 - w) HLR), as fractions (hard labels here)."""
    ior = improvement_over_random(distilled, random_real).accuracies
    hlr = whole_set_gap(distilled, whole_set).accuracies
    return EvalResult(
        [normalised((weight * i - (1 - weight) * h) / 100) for i, h in _paired(ior, hlr)]
    )
