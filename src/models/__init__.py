"""Networks used for distillation and evaluation, looked up by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from torch import nn

from src.errors import ConfigError
from src.models.alexnet import AlexNet
from src.models.convnet import ConvNet, as_im_size
from src.models.init import init_weights_
from src.models.resnet import ResNet18
from src.models.vgg import VGG11

__all__ = ["MODELS", "VGG11", "AlexNet", "ConvNet", "ResNet18", "build_model", "init_weights_"]

# Each entry is called as entry(channels, num_classes, im_size, **kwargs). Base names use the
# class defaults (any option may be passed); suffixed variants fix what their suffix names.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "convnet": ConvNet,
    "convnet_bn": partial(ConvNet, norm="batchnorm"),
    "convnet_d1": partial(ConvNet, depth=1),
    "convnet_d2": partial(ConvNet, depth=2),
    "convnet_d3": partial(ConvNet, depth=3),
    "convnet_d4": partial(ConvNet, depth=4),
    "alexnet": AlexNet,
    "alexnet_bn": partial(AlexNet, norm="batchnorm"),
    "vgg11": VGG11,
    "vgg11_bn": partial(VGG11, norm="batchnorm"),
    "resnet18": ResNet18,
    "resnet18_bn": partial(ResNet18, norm="batchnorm"),
}

# These pick their depth from the image size unless one is given: a 4x4 map before the classifier
# (64x64 needs 4 blocks; 128x128, ImageNette and ImageWoof as MTT and NCFM run them, 5).
_AUTO_DEPTH = ("convnet", "convnet_bn")


def default_depth(im_size: Sequence[int]) -> int:
    """ConvNet depth for an image size: 5 for 128x128 and larger, 4 for 64x64, else 3."""
    side = min(im_size)
    return 5 if side >= 128 else 4 if side >= 64 else 3


def build_model(
    name: str,
    channels: int,
    num_classes: int,
    im_size: Sequence[int],
    **kwargs: Any,
) -> nn.Module:
    """Build the registry model `name` for images of `channels` x `im_size` and `num_classes`
    (what `conf/model` names as its `_target_`)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; choose one of: {', '.join(sorted(MODELS))}")
    size = as_im_size(im_size)
    entry = MODELS[name]
    fixed = dict(entry.keywords) if isinstance(entry, partial) else {}
    # A variant's defining setting (e.g. depth of convnet_d2) must not be silently overridden.
    for key, value in kwargs.items():
        if key in fixed and fixed[key] != value:
            raise ConfigError(f"model '{name}' fixes {key}={fixed[key]!r}; got {key}={value!r}")
    if name in _AUTO_DEPTH and "depth" not in kwargs:
        kwargs["depth"] = default_depth(size)
    # Report unknown options (e.g. width for alexnet) as a config error, not a TypeError.
    try:
        inspect.signature(entry).bind(channels, num_classes, size, **kwargs)
    except TypeError as err:
        raise ConfigError(
            f"model '{name}' does not accept these options {sorted(kwargs)}: {err}"
        ) from err
    return entry(channels, num_classes, size, **kwargs)
