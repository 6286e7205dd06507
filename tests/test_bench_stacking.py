"""The grouped-convolution form of N ConvNets that the performance suite times."""

import pytest
import torch
import torch.nn.functional as F

from bench.stacking import GroupedConvNets
from src.models import build_model, init_weights_
from src.rng import make_generator


def _nets(n: int, **kwargs) -> list[torch.nn.Module]:
    return [
        init_weights_(build_model("convnet", 3, 5, (16, 16), width=8, **kwargs),
                      make_generator(i, "test-stack"))
        for i in range(n)
    ]  # fmt: skip


def test_grouped_networks_compute_each_networks_logits_and_gradients_on_its_own_batch():
    nets = _nets(3)
    grouped = GroupedConvNets(nets)
    x = torch.randn(3, 4, 3, 16, 16, generator=make_generator(0, "test-x"))
    y = torch.randint(0, 5, (3, 4), generator=make_generator(0, "test-y"))
    logits = grouped(x)
    loop = torch.stack([net(b) for net, b in zip(nets, x, strict=True)])
    torch.testing.assert_close(logits, loop, rtol=1e-5, atol=1e-5)
    F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").backward()
    F.cross_entropy(loop.flatten(0, 1), y.flatten(), reduction="sum").backward()
    first_conv = grouped.features[0].weight.grad
    torch.testing.assert_close(first_conv, torch.cat([n.features[0].weight.grad for n in nets]))
    torch.testing.assert_close(
        grouped.classifier.weight.grad, torch.stack([n.classifier.weight.grad for n in nets])
    )


def test_grouped_networks_refuse_layers_without_a_grouped_form():
    with pytest.raises(TypeError, match="BatchNorm2d"):
        GroupedConvNets(_nets(2, norm="batchnorm"))
