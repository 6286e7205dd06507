"""What the stages of one distillation run share (src/pipelines/distill.py builds it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig
from torch import Tensor

from src.data import DatasetInfo, RealPool
from src.evaluation import EvalResult
from src.evaluation.callback import PeriodicEvaluation
from src.methods.base import SyntheticSetModule
from src.pipelines.diagnostics import GeometryDiagnostics
from src.pruning import Pruner

DISTILLED_FILE = "distilled.safetensors"
RESULTS_FILE = "results.json"


@dataclass
class Run:
    """What the stages of one distillation run share."""

    cfg: DictConfig
    out: Path
    info: DatasetInfo
    pool: RealPool
    pruner: Pruner
    module: SyntheticSetModule
    initial: tuple[Tensor, Tensor]
    baseline: tuple[Tensor, Tensor] | None = None
    kept: Tensor | None = None
    resume_from: Path | None = None
    resumed_at: int | None = None
    seconds_before: float = 0.0  # distillation seconds of the interrupted parts
    test_pool: RealPool | None = None
    evaluate: Callable[..., EvalResult] | None = None
    periodic: PeriodicEvaluation | None = None
    diagnostics: GeometryDiagnostics | None = None
    loggers: list = field(default_factory=list)
    sharded: bool = False  # holds some classes only (a classes= job or a class-sharded rank)
