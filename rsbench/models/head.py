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
        self._folded: tuple[tuple, list[Tensor], Tensor] | None = None

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        if not any(p.requires_grad for p in self.parameters()):
            return self.forward_folded(feats)
        size = feats[0].shape[-2:]
        maps = []
        for i, f in enumerate(feats):
            x = getattr(self, f"linear_c{i + 1}")(f)
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            maps.append(x)
        x = self.linear_fuse(torch.cat(maps[::-1], dim=1))
        return self.linear_pred(self.dropout(x))

    def forward_folded(self, feats: Sequence[Tensor]) -> Tensor:
        """``forward`` with the 1x1 fuse conv folded into the four projections; taken by a frozen head.

        The fuse conv of the concatenated, upsampled projections equals the sum over stages of
        ``up(A_i f_i) + W_i b_i``, ``A_i = W_i P_i`` (``W_i`` the conv's block of stage i, ``P_i, b_i`` its
        projection), as bilinear upsampling commutes with channel mixing; in eval mode the BatchNorm's
        affine map folds in as well. Each ``A_i`` maps ``C_i`` channels at the stage's own resolution, so
        the ``4E -> E`` conv at 1/4 scale (most of a forward at the published width) is gone; only
        rounding differs. A frozen head is the distillation teacher's, run at every student step; a
        trained head keeps ``forward`` for its gradients. Maps stay channels-last ``[B, h, w, E]``: on
        the CPU, bilinear upsampling of E channels is far faster in that layout.
        """
        bn = self.linear_fuse.bn
        fold_bn = not bn.training and bn.running_var is not None and bn.weight is not None
        mats, const = self.folded_weights(fold_bn)
        e, size = const.shape[0], feats[0].shape[-2:]
        pre = None
        for i, (f, mat) in enumerate(zip(feats, mats, strict=True)):
            rows = f.permute(0, 2, 3, 1).flatten(0, 2)
            y = torch.addmm(const, rows, mat) if i == 0 else rows @ mat
            y = y.view(f.shape[0], *f.shape[-2:], e).permute(0, 3, 1, 2)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            pre = y if pre is None else pre.add_(y)
        x = pre.relu_() if fold_bn else self.linear_fuse.activate(bn(pre))
        x = self.dropout(x)
        k = self.linear_pred.weight.shape[0]
        logits = torch.addmm(self.linear_pred.bias, x.permute(0, 2, 3, 1).reshape(-1, e),
                             self.linear_pred.weight[:, :, 0, 0].T)
        return logits.view(x.shape[0], *size, k).permute(0, 3, 1, 2).contiguous()

    def folded_weights(self, fold_bn: bool) -> tuple[list[Tensor], Tensor]:
        """``A_i^T`` (``[C_i, E]``, BatchNorm scale folded in when ``fold_bn``) and the constant ``[E]``.

        In the weights' dtype (autocast off), cached until a weight or statistic changes (in place, or moved).
        """
        bn = self.linear_fuse.bn
        tensors = [*self.parameters(), *(b for b in bn.buffers() if b is not None)]
        key = (fold_bn, *((t.data_ptr(), t._version) for t in tensors))
        if self._folded is not None and self._folded[0] == key:
            return self._folded[1], self._folded[2]
        w_fuse = self.linear_fuse.conv.weight[:, :, 0, 0]  # [E, 4E], blocks in the order c4, c3, c2, c1
        e = w_fuse.shape[0]
        with torch.autocast(w_fuse.device.type, enabled=False):
            if fold_bn:
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                const = bn.bias - bn.running_mean * scale
            else:
                scale, const = torch.ones_like(w_fuse[:, 0]), torch.zeros_like(w_fuse[:, 0])
            mats = []
            for i in range(4):
                proj = getattr(self, f"linear_c{i + 1}").proj
                block = w_fuse[:, (3 - i) * e:(4 - i) * e] * scale[:, None]
                mats.append((block @ proj.weight).T.contiguous())
                const = const + block @ proj.bias
        self._folded = (key, mats, const)
        return mats, const
