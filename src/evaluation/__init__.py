"""Evaluation of distilled sets by the field's protocol."""

from src.evaluation.module import EvalModule
from src.evaluation.protocol import EvalProtocol, EvalResult
from src.evaluation.run import evaluate_set

__all__ = ["EvalModule", "EvalProtocol", "EvalResult", "evaluate_set"]
