"""SegFormer all-MLP decode head (Xie et al. 2021, arXiv 2105.15203).

Names follow the released mmseg SegFormer checkpoints (``linear_c{1..4}.proj``,
``linear_fuse.conv``, ``linear_fuse.bn``, ``linear_pred``), and the four projected maps
are concatenated in the released order (c4, c3, c2, c1), so decode heads load 1:1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """Per-pixel linear projection: [B, C, H, W] -> [B, E, H, W]."""

    def __init__(self, in_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvBNReLU(nn.Module):
    """1x1 conv (no bias) + BatchNorm + ReLU, laid out like mmcv's ``ConvModule``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class SegFormerHead(nn.Module):
    """All-MLP decoder: 4 maps [B, C_i, H_i, W_i] -> logits [B, K, H_1, W_1] at the first map's size."""

    def __init__(
        self, in_channels: Sequence[int], num_classes: int, embed_dim: int = 256, dropout: float = 0.1
    ) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"SegFormerHead needs 4 input stages, got {len(in_channels)}")
        for i, c in enumerate(in_channels):
            setattr(self, f"linear_c{i + 1}", MLP(c, embed_dim))
        self.linear_fuse = ConvBNReLU(4 * embed_dim, embed_dim)
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        maps = []
        for i, f in enumerate(feats):
            x = getattr(self, f"linear_c{i + 1}")(f)
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            maps.append(x)
        x = self.linear_fuse(torch.cat(maps[::-1], dim=1))
        return self.linear_pred(self.dropout(x))
