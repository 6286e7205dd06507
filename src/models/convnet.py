"""The standard dataset-distillation ConvNet and the layer helpers shared by the model package."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.errors import ConfigError

NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
ACTS = ("relu", "leakyrelu", "sigmoid", "gelu")
POOLS = ("avgpool", "maxpool", "none")


def check_choice(kind: str, value: str, allowed: Sequence[str]) -> str:
    """Return `value` if it is one of `allowed`, else raise ConfigError naming the choices."""
    if value not in allowed:
        raise ConfigError(f"unknown {kind} '{value}'; choose one of: {', '.join(allowed)}")
    return value


def as_im_size(im_size: Sequence[int]) -> tuple[int, int]:
    """Normalise an image size (tuple, list or Hydra ListConfig) to a (h, w) tuple of ints."""
    size = tuple(int(s) for s in im_size)
    if len(size) != 2 or min(size) <= 0:
        raise ConfigError(f"im_size must be two positive ints (h, w), got {tuple(im_size)}")
    return size  # type: ignore[return-value]


def first_conv_padding(im_size: tuple[int, int], padding: int) -> int:
    """Padding of the first conv: 28x28 inputs get 2 more so their maps match the 32x32 case."""
    return padding + 2 if im_size == (28, 28) else padding


def input_geometry(
    im_size: Sequence[int], norm: str, norms: Sequence[str], padding: int
) -> tuple[tuple[int, int], int]:
    """The (h, w) input size and first-conv padding of a network, once `norm` is checked."""
    size = as_im_size(im_size)
    check_choice("norm", norm, norms)
    return size, first_conv_padding(size, padding)


def make_norm(name: str, channels: int, hw: tuple[int, int] | None = None) -> nn.Module:
    """Build a normalisation layer over `channels` feature maps of spatial size `hw`."""
    check_choice("norm", name, NORMS)
    if name == "instancenorm":
        # One group per channel = instance norm with affine params and no running stats, so a
        # sample's output never depends on the rest of the batch.
        return nn.GroupNorm(channels, channels, affine=True)
    if name == "batchnorm":
        return nn.BatchNorm2d(channels)
    if name == "layernorm":
        if hw is None:
            raise ConfigError("layernorm needs the spatial size of the feature map")
        return nn.LayerNorm([channels, hw[0], hw[1]], elementwise_affine=True)
    if name == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    return nn.Identity()


def make_act(name: str) -> nn.Module:
    """Build an activation layer (not in place: higher-order gradients go through it)."""
    check_choice("act", name, ACTS)
    if name == "relu":
        return nn.ReLU()
    if name == "leakyrelu":
        return nn.LeakyReLU(0.01)
    if name == "sigmoid":
        return nn.Sigmoid()
    return nn.GELU()


def make_pool(name: str) -> nn.Module:
    """Build a 2x2 stride-2 pooling layer, or identity for "none"."""
    check_choice("pool", name, POOLS)
    if name == "avgpool":
        return nn.AvgPool2d(kernel_size=2, stride=2)
    if name == "maxpool":
        return nn.MaxPool2d(kernel_size=2, stride=2)
    return nn.Identity()


class ConvNet(nn.Module):
    """`depth` blocks of conv3x3 -> norm -> act -> pool, then one linear classifier."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        im_size: Sequence[int],
        width: int = 128,
        depth: int = 3,
        norm: str = "instancenorm",
        act: str = "relu",
        pool: str = "avgpool",
    ) -> None:
        super().__init__()
        size = as_im_size(im_size)
        for kind, value, allowed in (
            ("norm", norm, NORMS),
            ("act", act, ACTS),
            ("pool", pool, POOLS),
        ):
            check_choice(kind, value, allowed)
        if depth < 1 or width < 1:
            raise ConfigError(f"ConvNet needs depth >= 1 and width >= 1, got {depth}, {width}")
        # 28x28 -> 32x32 after the first conv, so MNIST features have the CIFAR shape.
        pad = first_conv_padding(size, 1)
        h, w = size[0] + 2 * pad - 2, size[1] + 2 * pad - 2
        layers: list[nn.Module] = []
        in_ch = channels
        for i in range(depth):
            layers.append(nn.Conv2d(in_ch, width, kernel_size=3, padding=pad if i == 0 else 1))
            layers.append(make_norm(norm, width, (h, w)))
            layers.append(make_act(act))
            layers.append(make_pool(pool))
            if pool != "none":
                h, w = h // 2, w // 2
            if h < 1 or w < 1:
                raise ConfigError(f"ConvNet depth {depth} is too deep for images of size {size}")
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.depth = depth
        self.feature_dim: int = width * h * w
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened output of the feature blocks, shape (N, feature_dim)."""
        return self.features(x).flatten(1)

    def stages(self) -> list[nn.Module]:
        """Each block up to its activation (the pool before it opens the next), then the last
        pool: their composition is ``features`` (src/models/stages.py)."""
        cuts = [0, *(4 * i + 3 for i in range(self.depth)), len(self.features)]
        return [self.features[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (N, num_classes)."""
        return self.classifier(self.embed(x))
