"""Small-input VGG11 as used in dataset-distillation papers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.errors import ConfigError
from src.models.convnet import input_geometry, make_norm
from src.models.stages import split_before_pools

VGG_NORMS = ("instancenorm", "batchnorm")
VGG11_CFG: list[int | str] = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG11(nn.Module):
    """VGG11 conv stack (3x3 conv -> norm -> ReLU, five 2x2 max pools), then a linear classifier."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        im_size: Sequence[int],
        norm: str = "instancenorm",
    ) -> None:
        super().__init__()
        # 3x3 with padding 3 turns 28x28 into 32x32.
        size, pad = input_geometry(im_size, norm, VGG_NORMS, 1)
        h, w = size[0] + 2 * pad - 2, size[1] + 2 * pad - 2
        layers: list[nn.Module] = []
        in_ch = channels
        for item in VGG11_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                h, w = h // 2, w // 2
                continue
            conv = nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1 if layers else pad)
            layers += [conv, make_norm(norm, int(item)), nn.ReLU()]
            in_ch = int(item)
        if h < 1 or w < 1:
            raise ConfigError(f"VGG11 needs images of at least 32x32 (or 28x28), got {size}")
        self.features = nn.Sequential(*layers)
        # 32x32 -> 1x1 (512 features); 64x64 -> 2x2 (2048 features).
        self.feature_dim: int = in_ch * h * w
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
