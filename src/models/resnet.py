"""CIFAR-style ResNet18 (3x3 stem, no max pool) as used in dataset-distillation papers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.models.convnet import input_geometry, make_norm

RESNET_NORMS = ("instancenorm", "batchnorm")


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.norm2 = make_norm(norm, out_ch)
        self.act = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), make_norm(norm, out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet18 with widths 64/128/256/512, global average pool and a linear classifier."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        im_size: Sequence[int],
        norm: str = "instancenorm",
    ) -> None:
        super().__init__()
        # 3x3 with padding 3 turns 28x28 into 32x32.
        _, pad = input_geometry(im_size, norm, RESNET_NORMS, 1)
        self.stem = nn.Sequential(
            nn.Conv2d(channels, 64, 3, stride=1, padding=pad, bias=False),
            make_norm(norm, 64),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        in_ch = 64
        for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(in_ch, out_ch, stride, norm), BasicBlock(out_ch, out_ch, 1, norm)]
            in_ch = out_ch
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim: int = in_ch
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features, shape (N, 512)."""
        return self.pool(self.layers(self.stem(x))).flatten(1)

    def stages(self) -> list[nn.Module]:
        """Stem with the first two blocks, then each further pair of blocks (one width each),
        then the global pool: their composition is the embedding before flattening
        (src/models/stages.py)."""
        pairs = [self.layers[i : i + 2] for i in range(0, len(self.layers), 2)]
        return [nn.Sequential(self.stem, *pairs[0]), *pairs[1:], self.pool]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (N, num_classes)."""
        return self.classifier(self.embed(x))
