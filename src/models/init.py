"""Seeded, in-place re-initialisation that reproduces PyTorch's default parameter init."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

# Norm layers whose default reset is deterministic (ones/zeros, running stats cleared).
_NORM_TYPES = (_NormBase, nn.GroupNorm, nn.LayerNorm)


def _fan_in(weight: torch.Tensor) -> int:
    """Fan-in as torch.nn.init computes it: dim 1 times the receptive field size."""
    return weight.shape[1] * math.prod(weight.shape[2:]) if weight.dim() >= 2 else 0


def _same_device(a: torch.device, b: torch.device) -> bool:
    """True when two devices are the same ("cuda" and "cuda:0" count as the same)."""
    if a.type != b.type:
        return False
    return a.index is None or b.index is None or a.index == b.index


def _reset_affine(module: nn.Module, generator: torch.Generator) -> None:
    """Conv/Linear default: kaiming_uniform_(a=sqrt(5)) weight, uniform(+-1/sqrt(fan_in)) bias."""
    weight: torch.Tensor = module.weight  # type: ignore[assignment]
    if weight.is_contiguous():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    else:
        # As Conv's reset_parameters does for channels_last weights: draw in contiguous order
        # so the values match those of a contiguous layer with the same generator state.
        tmp = torch.empty_like(weight, memory_format=torch.contiguous_format)
        nn.init.kaiming_uniform_(tmp, a=math.sqrt(5), generator=generator)
        weight.copy_(tmp)
    bias = getattr(module, "bias", None)
    if bias is not None:
        fan_in = _fan_in(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound, generator=generator)


def init_weights_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise `module` in place like PyTorch's defaults, drawing only from `generator`.

    `generator` must live on the same device as the parameters (a CPU generator for a CPU
    model, `torch.Generator(device="cuda")` for a CUDA model). The global RNG is never used,
    so the same generator state always yields the same network. Returns `module`.
    """
    with torch.no_grad():
        for sub in module.modules():
            own = list(sub.parameters(recurse=False))
            for p in own:
                if not _same_device(p.device, generator.device):
                    raise ValueError(
                        f"generator is on {generator.device} but parameters of "
                        f"{type(sub).__name__} are on {p.device}; they must match"
                    )
            if isinstance(sub, (_ConvNd, nn.Linear)):
                _reset_affine(sub, generator)
            elif isinstance(sub, _NORM_TYPES):
                # No randomness in these resets, so PyTorch's own method is exact and RNG-free.
                sub.reset_parameters()  # type: ignore[operator]
            elif own:
                # Falling back to reset_parameters() would silently use the global RNG.
                raise TypeError(
                    f"init_weights_ does not know how to initialise {type(sub).__name__}"
                )
    return module
