"""Benchmarks: measured side by side in one run, results committed under bench/results/."""

import torch

from src.pipelines.compare import machine

__all__ = ["machine", "sync"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer around it measures the work (CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
