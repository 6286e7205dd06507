"""Whether a precision setting pays on this machine's CPU.

oneDNN runs bfloat16 convolutions natively only where the CPU has AVX-512 BF16 or AMX;
elsewhere torch falls back to its reference kernel, which is far slower than float32
(measured in bench/results/precision.md).
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def cpu_bf16_native() -> bool:
    """Whether oneDNN runs bfloat16 convolutions natively on this CPU."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def runs_on_cpu(accelerator: str) -> bool:
    """Whether a Trainer with ``accelerator`` puts the networks on the CPU."""
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def slow_precision(accelerator: str, precision: str) -> str | None:
    """Why ``precision`` on ``accelerator`` would be slow here, or None when it is not."""
    if not (str(precision).startswith("bf16") and runs_on_cpu(accelerator)) or cpu_bf16_native():
        return None
    return (
        f"trainer.precision={precision} on a CPU without native bfloat16 (no AVX-512 BF16 "
        "or AMX): its convolutions fall back to a reference kernel, 9-31x slower than "
        "float32 on an AVX2 CPU (bench/results/precision.md); use trainer=cpu"
    )


def warn_if_slow_precision(accelerator: str, precision: str) -> None:
    """Log one warning when the configured precision is slow on this CPU."""
    reason = slow_precision(accelerator, precision)
    if reason:
        log.warning(reason)
