"""Mix Transformer (MiT) encoder of SegFormer.

Paper: "SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers", Xie et al., NeurIPS 2021, arXiv 2105.15203.

Written from the paper; module and parameter names follow the released MiT
checkpoints (``patch_embed1.proj.weight``, ``block1.0.attn.q.weight``, ``norm1.weight``
...), so official ImageNet and SegFormer weights load 1:1 (see ``checkpoint.py``).

What differs from the released code:
- attention runs through ``F.scaled_dot_product_attention`` (same maths, fused kernel);
- no ImageNet classifier (``head``): the encoder only returns the four stage maps;
- dropout/attention-dropout options are left out (0 in every published config);
  drop-path grows linearly from 0 to ``drop_path_rate`` over all blocks, as released.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn

from rsbench.models._registry import ENCODERS


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping windows + LayerNorm: [B,Cin,H,W] -> [B,N,C], (H', W')."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class Attention(nn.Module):
    """Efficient self-attention: keys/values from a map shrunk ``sr_ratio`` times per side."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        """x: [B, N=h*w, C] -> [B, N, C]."""
        b, n, c = x.shape
        d = c // self.num_heads
        q = self.q(x).reshape(b, n, self.num_heads, d).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
            x = self.norm(x)
        k, v = self.kv(x).reshape(b, -1, 2, self.num_heads, d).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    """3x3 depthwise conv on tokens: [B,N,C] -> [B,N,C] (the 'Mix' of Mix-FFN)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        return self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """fc1 -> depthwise 3x3 -> GELU -> fc2, on [B,N,C] tokens."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1 x), then x + mix_ffn(norm2 x)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, drop_path: float,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, sr_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class MixVisionTransformer(nn.Module):
    """MiT encoder: [B, in_chans, H, W] -> 4 maps [B, C_i, H/s_i, W/s_i], strides 4/8/16/32.

    Attributes ``patch_embed{i}``, ``block{i}`` and ``norm{i}`` (i = 1..4) mirror the
    released checkpoints. ``feature_info`` lists ``num_chs``/``reduction``/``module``
    per stage, timm-style.
    """

    def __init__(
        self,
        embed_dims: Sequence[int] = (32, 64, 160, 256),
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        in_chans: int = 3,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if not len(embed_dims) == len(depths) == len(num_heads) == len(sr_ratios) == 4:
            raise ValueError("MiT needs exactly 4 stages")
        self.embed_dims = tuple(embed_dims)
        total = sum(depths)
        dpr = [drop_path_rate * k / max(total - 1, 1) for k in range(total)]  # linspace(0, rate, total)
        cur = 0
        for i in range(4):
            patch, stride = (7, 4) if i == 0 else (3, 2)
            cin = in_chans if i == 0 else embed_dims[i - 1]
            setattr(self, f"patch_embed{i + 1}", OverlapPatchEmbed(cin, embed_dims[i], patch, stride))
            blocks = [
                Block(embed_dims[i], num_heads[i], mlp_ratio, sr_ratios[i], dpr[cur + j], norm_eps)
                for j in range(depths[i])
            ]
            setattr(self, f"block{i + 1}", nn.ModuleList(blocks))
            setattr(self, f"norm{i + 1}", nn.LayerNorm(embed_dims[i], eps=norm_eps))
            cur += depths[i]
        self.feature_info: list[dict[str, Any]] = [
            {"num_chs": c, "reduction": 4 * 2**i, "module": f"norm{i + 1}"} for i, c in enumerate(embed_dims)
        ]
        self.apply(_init_weights)

    def unused_checkpoint_keys(self, keys: Iterable[str]) -> set[str]:
        """Official keys this encoder does not use: the ImageNet classifier ``head.weight/bias``."""
        return {k for k in keys if k in ("head.weight", "head.bias")}

    def forward_stage(self, i: int, x: Tensor) -> Tensor:
        """Stage ``i`` (1..4) alone: the previous map (or the image) -> [B, C_i, h, w]. Fusion models
        (CMNeXt) change the map between stages."""
        tokens, h, w = getattr(self, f"patch_embed{i}")(x)
        for blk in getattr(self, f"block{i}"):
            tokens = blk(tokens, h, w)
        tokens = getattr(self, f"norm{i}")(tokens)
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x: [B, in_chans, H, W] -> [B, C_i, ceil(H/s_i), ceil(W/s_i)] for s_i = 4, 8, 16, 32."""
        outs = []
        for i in range(1, 5):
            x = self.forward_stage(i, x)
            outs.append(x)
        return outs


def _init_weights(m: nn.Module) -> None:
    """Released init: trunc-normal(0.02) linears, unit LayerNorms, He-normal (fan-out) convs."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


_WIDE = (64, 128, 320, 512)
_HEADS = (1, 2, 5, 8)
_SR = (8, 4, 2, 1)


@ENCODERS.register()
def mit_b0(drop_path_rate: float = 0.1, **kw: Any) -> MixVisionTransformer:
    return MixVisionTransformer((32, 64, 160, 256), (2, 2, 2, 2), _HEADS, _SR, 4.0, drop_path_rate, **kw)


@ENCODERS.register()
def mit_b1(drop_path_rate: float = 0.1, **kw: Any) -> MixVisionTransformer:
    return MixVisionTransformer(_WIDE, (2, 2, 2, 2), _HEADS, _SR, 4.0, drop_path_rate, **kw)


@ENCODERS.register()
def mit_b2(drop_path_rate: float = 0.1, **kw: Any) -> MixVisionTransformer:
    return MixVisionTransformer(_WIDE, (3, 4, 6, 3), _HEADS, _SR, 4.0, drop_path_rate, **kw)


@ENCODERS.register()
def mit_b3(drop_path_rate: float = 0.1, **kw: Any) -> MixVisionTransformer:
    return MixVisionTransformer(_WIDE, (3, 4, 18, 3), _HEADS, _SR, 4.0, drop_path_rate, **kw)


@ENCODERS.register()
def mit_b4(drop_path_rate: float = 0.1, **kw: Any) -> MixVisionTransformer:
    return MixVisionTransformer(_WIDE, (3, 8, 27, 3), _HEADS, _SR, 4.0, drop_path_rate, **kw)


@ENCODERS.register()
def mit_b5(drop_path_rate: float = 0.1, **kw: Any) -> MixVisionTransformer:
    return MixVisionTransformer(_WIDE, (3, 6, 40, 3), _HEADS, _SR, 4.0, drop_path_rate, **kw)


@ENCODERS.register()
def mit_test(drop_path_rate: float = 0.1, **kw: Any) -> MixVisionTransformer:
    """Tiny MiT (dims 8/16/24/32, one block per stage) for tests, the demo and CPU CI."""
    return MixVisionTransformer((8, 16, 24, 32), (1, 1, 1, 1), (1, 1, 1, 1), _SR, 4.0, drop_path_rate, **kw)
