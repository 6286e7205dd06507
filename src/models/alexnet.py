"""Small-input AlexNet as used in dataset-distillation papers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.errors import ConfigError
from src.models.convnet import input_geometry, make_norm
from src.models.stages import split_before_pools

ALEXNET_NORMS = ("none", "batchnorm", "instancenorm")


class AlexNet(nn.Module):
    """Five convs (128-192-256-192-192) with three 2x2 max pools, then one linear classifier."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        im_size: Sequence[int],
        norm: str = "none",
    ) -> None:
        super().__init__()
        # 5x5 with padding 4 turns 28x28 into 32x32; padding 2 keeps other sizes.
        size, pad = input_geometry(im_size, norm, ALEXNET_NORMS, 2)
        specs = [  # (in, out, kernel, padding, pool after)
            (channels, 128, 5, pad, True),
            (128, 192, 5, 2, True),
            (192, 256, 3, 1, False),
            (256, 192, 3, 1, False),
            (192, 192, 3, 1, True),
        ]
        layers: list[nn.Module] = []
        h, w = size[0] + 2 * pad - 4, size[1] + 2 * pad - 4
        for in_ch, out_ch, k, p, pool in specs:
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=k, padding=p), make_norm(norm, out_ch)]
            layers.append(nn.ReLU())
            if pool:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ConfigError(f"AlexNet needs images of at least 8x8, got {size}")
        self.features = nn.Sequential(*layers)
        self.feature_dim: int = 192 * h * w
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened output of the conv stack, shape (N, feature_dim)."""
        return self.features(x).flatten(1)

    def stages(self) -> list[nn.Module]:
        """The conv stack cut before each max pool: their composition is ``features``."""
        return split_before_pools(self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (N, num_classes)."""
        return self.classifier(self.embed(x))
