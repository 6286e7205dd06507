"""Benchmarks: measured side by side in one run, results committed under bench/results/."""

import platform

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer around it measures the work (CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine() -> dict:
    """What a result file records about the machine it was measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
