"""Features at intermediate layers: one API for every registry network.

Each network's ``stages()`` lists its blocks in order (modules it already holds, so weights
and state-dict keys are unchanged); applied one after the other they give the feature map
that ``embed`` flattens. A stage ends at a block's activation, before the block's
downsampling (which opens the next stage), and the last stage is the final pooling: the
stage outputs are a block's full-resolution maps, as DataDAM reads them (the ReLU outputs
of the ConvNet). A method that matches intermediate layers reads ``stage_outputs`` instead
of hooking a particular network.
"""

from __future__ import annotations

from torch import Tensor, nn


def stage_outputs(net: nn.Module, x: Tensor) -> list[Tensor]:
    """The output of each of ``net.stages()`` for input ``x``; the last one flattened is
    ``net.embed(x)``."""
    outputs = []
    for stage in net.stages():
        x = stage(x)
        outputs.append(x)
    return outputs


def split_before_pools(features: nn.Sequential) -> list[nn.Module]:
    """``features`` cut before each pooling layer; the last part starts at the last pool."""
    cuts = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d | nn.AvgPool2d)]
    bounds = [0, *cuts, len(features)]
    return [features[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
