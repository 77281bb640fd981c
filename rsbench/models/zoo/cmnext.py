"""CMNeXt (Zhang et al., "Delivering Arbitrary-Modal Semantic Segmentation", CVPR 2023, arXiv 2303.01480).

Two branches. The RGB branch is a MiT. One auxiliary branch is shared by every other modality: at
each stage a patch-embedding conv shared by the modalities with a LayerNorm per modality, the
Self-Query Hub (a score net per modality, ``x + s(x) * x``, then the elementwise max over the
modalities), Parallel Pooling Mixer blocks, and a channel LayerNorm. Per stage the CMX Feature
Rectification Module exchanges information between the two branches and the Feature Fusion
Module merges them into the map the SegFormer head reads. The rectified RGB map feeds the next RGB
stage; each auxiliary modality's next input is its hub-scored map plus the rectified auxiliary map.

Written from the paper and the layout of the released checkpoints (``jamycheung/DELIVER``); module
and parameter names follow those files (``backbone.extra_downsample_layers.*``, ``backbone.FRMs.*``,
``decode_head.*``), so released checkpoints load 1:1 and strictly. Numerics as released:

- LayerNorm eps 1e-5 in the RGB branch and the fusion modules (torch's default, which the release
  uses), 1e-6 in the auxiliary branch's channel LayerNorms;
- between stages the release reshapes each hub-scored auxiliary map, laid out ``[B, C, H, W]``, as if
  it were ``[B, H, W, C]`` (``reshape(B, H, W, -1).permute(0, 3, 1, 2)``): the channels and positions
  are scrambled before the rectified map is added. Trained checkpoints learned with it, so it is kept
  (``_as_released_layout``);
- the drop-path rate is 0.1, linear over the blocks, the auxiliary blocks sharing the RGB blocks' rates.

Modalities mix inside the encoder (the hub's max, the rectification), so an absent modality cannot be
left out: the only fill is ``zero`` (the normalised input set to 0), as the released evaluations do.
Nothing is reusable across conditions except what precedes the first mixing, so each condition is a
forward (see ``benchmarks/test_protocol_cost.py`` for what that costs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn

from rsbench.errors import ConfigError
from rsbench.models._registry import MODELS
from rsbench.models.checkpoint import Layout, checkpoint_modalities, load_pretrained
from rsbench.models.contract import Capabilities, Present, builds, present_mask
from rsbench.models.head import SegFormerHead
from rsbench.models.mit import MixVisionTransformer

SETTINGS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "b0": ((32, 64, 160, 256), (2, 2, 2, 2)),
    "b1": ((64, 128, 320, 512), (2, 2, 2, 2)),
    "b2": ((64, 128, 320, 512), (3, 4, 6, 3)),
    "b3": ((64, 128, 320, 512), (3, 4, 18, 3)),
    "b4": ((64, 128, 320, 512), (3, 8, 27, 3)),
    "b5": ((64, 128, 320, 512), (3, 6, 40, 3)),
    "test": ((4, 8, 10, 16), (1, 1, 1, 1)),
}
"""Widths and depths per variant (the release enables B2, B4, B5; B0, B1, B3 follow its commented table).
``test``: small widths the fixed heads (1, 2, 5, 8) divide, one block per stage: the tiny configuration the
released-code harness built (``tests/released/make_cmnext_values.py``), so its files load into this variant."""
HEAD_WIDTH = {"b0": 256, "b1": 256, "test": 32}
"""The head's embedding: 256 for B0/B1, 512 otherwise (``semseg/models/cmnext.py``)."""
NUM_HEADS = (1, 2, 5, 8)
SR_RATIOS = (8, 4, 2, 1)
AUX_MLP_RATIOS = (8, 8, 4, 4)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map (biased variance, eps inside the root)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * ((x - mean) / torch.sqrt(var + self.eps)) + self.bias[:, None, None]


class SharedConv(nn.Module):
    """One conv applied to every modality (kept under ``.module``, the released key layout)."""

    def __init__(self, module: nn.Conv2d) -> None:
        super().__init__()
        self.module = module

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        # the modalities as one batch: the same arithmetic per image, one conv call
        return list(self.module(torch.cat(list(xs))).chunk(len(xs)))


class PerModalityNorm(nn.Module):
    """A channel LayerNorm per auxiliary modality (``ln_0``, ``ln_1``, ...)."""

    def __init__(self, dim: int, num: int) -> None:
        super().__init__()
        self.num = num
        for i in range(num):
            setattr(self, f"ln_{i}", ChannelLayerNorm(dim, eps=1e-6))

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        return [getattr(self, f"ln_{i}")(x) for i, x in enumerate(xs)]


class ParallelPatchEmbed(nn.Module):
    """The auxiliary branch's patch embedding: a shared strided conv, then each modality's own norm."""

    def __init__(self, in_chans: int, dim: int, patch: int, stride: int, num: int) -> None:
        super().__init__()
        self.proj = SharedConv(nn.Conv2d(in_chans, dim, patch, stride, patch // 2))
        self.norm = PerModalityNorm(dim, num)

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        return self.norm(self.proj(xs))


class SelfQueryHub(nn.Module):
    """Scores each auxiliary modality per pixel and keeps the strongest: ``max_k (x_k + s_k(x_k) x_k)``."""

    def __init__(self, dim: int, num: int) -> None:
        super().__init__()
        self.score_nets = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.Conv2d(dim, 1, 1), nn.Sigmoid())
            for _ in range(num)
        )

    def forward(self, xs: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """The selected map and each modality's scored map (the release carries the latter to the next stage)."""
        scored = [net(x) * x + x for net, x in zip(self.score_nets, xs, strict=True)]
        selected = scored[0]
        for x in scored[1:]:
            selected = torch.maximum(selected, x)
        return selected, scored


class PoolingAttention(nn.Module):
    """Multi-scale pooling attention: ``x * sigmoid(W (d + pool3 d + pool7 d + pool11 d)) + x``, d = dw7x7 x."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.conv4 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        d = self.conv0(x)
        mixed = d
        for k in (3, 7, 11):
            mixed = mixed + F.avg_pool2d(d, k, stride=1, padding=k // 2, count_include_pad=False)
        return torch.sigmoid(self.conv4(mixed)) * x + x


class ConvMlp(nn.Module):
    """1x1 conv -> depthwise 3x3 -> GELU -> 1x1 conv on a ``[B, C, H, W]`` map."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Module()
        self.dwconv.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.dwconv.dwconv(self.fc1(x))))


class PoolingMixerBlock(nn.Module):
    """Parallel Pooling Mixer block: a layer-scaled pooling-attention residual, then a channel gate (ECA-style
    1-D conv over the pooled channels) on the map plus a layer-scaled MLP (the gate replaces the identity)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = PoolingAttention(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.layer_scale_1 = nn.Parameter(1e-2 * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(1e-2 * torch.ones(dim))
        self.c_nets = nn.Sequential(nn.Conv1d(1, 1, 3, padding=1, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        gate = self.c_nets(x.mean((2, 3))[:, None, :])[:, 0, :, None, None]  # [B, C, 1, 1]
        return gate * x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class ChannelWeights(nn.Module):
    """FRM channel weights: an MLP on the average- and max-pooled concatenation -> two [B, C] gates."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * dim, 4 * dim), nn.ReLU(inplace=True), nn.Linear(4 * dim, 2 * dim),
                                 nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        """x: the two maps concatenated [B, 2C, H, W] -> [2, B, C, 1, 1]."""
        b, c2 = x.shape[:2]
        y = self.mlp(torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1))
        return y.view(b, 2, c2 // 2, 1, 1).transpose(0, 1)


class SpatialWeights(nn.Module):
    """FRM spatial weights: 1x1 convs on the concatenation -> two [B, 1, H, W] gates."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(2 * dim, dim, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, 2, 1),
                                 nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        """[B, 2C, H, W] -> [2, B, 1, H, W]."""
        return self.mlp(x).unsqueeze(2).transpose(0, 1)


class FeatureRectify(nn.Module):
    """CMX Feature Rectification: each branch gains the other's map through channel and spatial gates (0.5 each)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.channel_weights = ChannelWeights(dim)
        self.spatial_weights = SpatialWeights(dim)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        both = torch.cat([x1, x2], dim=1)
        cw, sw = self.channel_weights(both), self.spatial_weights(both)
        return x1 + 0.5 * cw[1] * x2 + 0.5 * sw[1] * x2, x2 + 0.5 * cw[0] * x1 + 0.5 * sw[0] * x1


class CrossAttention(nn.Module):
    """Efficient cross attention: each branch's queries read the other's ``softmax_over_keys(K^T V)`` context."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.kv1 = nn.Linear(dim, 2 * dim, bias=False)
        self.kv2 = nn.Linear(dim, 2 * dim, bias=False)

    def _context(self, kv: nn.Linear, x: Tensor) -> Tensor:
        b, n, c = x.shape
        k, v = kv(x).view(b, n, 2, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return ((k.transpose(-2, -1) @ v) * self.scale).softmax(dim=-2)  # [B, h, d, d]

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        b, n, c = x1.shape
        ctx1, ctx2 = self._context(self.kv1, x1), self._context(self.kv2, x2)

        def heads(x: Tensor) -> Tensor:
            return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

        out1 = (heads(x1) @ ctx2).transpose(1, 2).reshape(b, n, c)
        out2 = (heads(x2) @ ctx1).transpose(1, 2).reshape(b, n, c)
        return out1, out2


class CrossPath(nn.Module):
    """FFM stage 1: half of each branch's projected channels goes through cross attention, then residual + norm."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.channel_proj1 = nn.Linear(dim, 2 * dim)
        self.channel_proj2 = nn.Linear(dim, 2 * dim)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.end_proj1 = nn.Linear(2 * dim, dim)
        self.end_proj2 = nn.Linear(2 * dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        y1, u1 = F.relu(self.channel_proj1(x1)).chunk(2, dim=-1)
        y2, u2 = F.relu(self.channel_proj2(x2)).chunk(2, dim=-1)
        v1, v2 = self.cross_attn(u1, u2)
        out1 = self.norm1(x1 + self.end_proj1(torch.cat([y1, v1], dim=-1)))
        out2 = self.norm2(x2 + self.end_proj2(torch.cat([y2, v2], dim=-1)))
        return out1, out2


class ChannelEmbed(nn.Module):
    """FFM stage 2: the concatenated branches [B, 2C, H, W] -> [B, C, H, W] (residual 1x1 + conv path, BN)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.residual = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.channel_embed = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, groups=out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 1),
            nn.BatchNorm2d(out_ch),
        )
        self.norm = nn.BatchNorm2d(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.residual(x) + self.channel_embed(x))


class FeatureFusion(nn.Module):
    """CMX Feature Fusion Module: cross path on tokens, then channel embedding of the concatenation."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.cross = CrossPath(dim, num_heads)
        self.channel_emb = ChannelEmbed(2 * dim, dim)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        b, c, h, w = x1.shape
        t1, t2 = self.cross(x1.flatten(2).transpose(1, 2), x2.flatten(2).transpose(1, 2))
        merged = torch.cat([t1, t2], dim=-1).transpose(1, 2).reshape(b, 2 * c, h, w)
        return self.channel_emb(merged)


def _as_released_layout(x: Tensor) -> Tensor:
    """The release's ``x.reshape(B, H, W, -1).permute(0, 3, 1, 2)`` of a ``[B, C, H, W]`` map (see the module doc)."""
    b, c, h, w = x.shape
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)


class CMNeXtBackbone(MixVisionTransformer):
    """The RGB MiT (its keys at this level: ``patch_embed1``, ``block1``, ``norm1``, ...) and the auxiliary
    branch for ``num_aux`` modalities (none: a plain MiT, the RGB-only checkpoints)."""

    def __init__(self, embed_dims: Sequence[int], depths: Sequence[int], num_aux: int,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__(embed_dims, depths, NUM_HEADS, SR_RATIOS, 4.0, drop_path_rate, norm_eps=1e-5)
        self.num_aux = num_aux
        total = sum(depths)
        dpr = [drop_path_rate * k / max(total - 1, 1) for k in range(total)]
        if num_aux > 0:
            self.extra_downsample_layers = nn.ModuleList(
                [ParallelPatchEmbed(3, embed_dims[0], 7, 4, num_aux)]
                + [ParallelPatchEmbed(embed_dims[i], embed_dims[i + 1], 3, 2, num_aux) for i in range(3)]
            )
        if num_aux > 1:
            self.extra_score_predictor = nn.ModuleList(SelfQueryHub(d, num_aux) for d in embed_dims)
        cur = 0
        for i, (dim, depth) in enumerate(zip(embed_dims, depths, strict=True)):
            if num_aux > 0:
                blocks = [PoolingMixerBlock(dim, AUX_MLP_RATIOS[i], dpr[cur + j]) for j in range(depth)]
                setattr(self, f"extra_block{i + 1}", nn.ModuleList(blocks))
                setattr(self, f"extra_norm{i + 1}", ChannelLayerNorm(dim, eps=1e-6))
            cur += depth
        if num_aux > 0:
            self.FRMs = nn.ModuleList(FeatureRectify(d) for d in embed_dims)
            self.FFMs = nn.ModuleList(FeatureFusion(d, h) for d, h in zip(embed_dims, NUM_HEADS, strict=True))

    def forward(self, rgb: Tensor, aux: Sequence[Tensor] = ()) -> list[Tensor]:  # type: ignore[override]
        """rgb [B, 3, H, W] and ``num_aux`` auxiliary inputs of that shape -> 4 fused maps [B, C_i, h_i, w_i]."""
        if len(aux) != self.num_aux:
            raise ValueError(f"this backbone takes {self.num_aux} auxiliary inputs, got {len(aux)}")
        outs = []
        x, ext = rgb, list(aux)
        for i in range(4):
            x = self.forward_stage(i + 1, x)
            if not self.num_aux:
                outs.append(x)
                continue
            ext = self.extra_downsample_layers[i](ext)
            if self.num_aux > 1:
                f, ext = self.extra_score_predictor[i](ext)
            else:
                f = ext[0]
            for blk in getattr(self, f"extra_block{i + 1}"):
                f = blk(f)
            f = getattr(self, f"extra_norm{i + 1}")(f)
            x, f = self.FRMs[i](x, f)
            outs.append(self.FFMs[i](x, f))
            ext = [_as_released_layout(e) + f for e in ext] if self.num_aux > 1 else [f]
        return outs


class CMNeXt(nn.Module):
    """CMNeXt segmentor: ``forward(modalities, present, fill="zero") -> logits [B, K, H, W]``.

    ``modalities[0]`` is the RGB branch's input; the others share the auxiliary branch in this order
    (the release's ``modals`` list, e.g. DELIVER ``rgb, depth, event, lidar``; MCubeS ``rgb, aolp, dolp,
    nir``). An absent modality (``present`` False) is fed as zeros.
    """

    architecture = "cmnext"
    capabilities = Capabilities(fills=("zero",), separable=False, features=False)

    def __init__(self, variant: str, modalities: Sequence[str], num_classes: int, embed_dim: int | None = None,
                 drop_path_rate: float = 0.1, dropout: float = 0.1) -> None:
        super().__init__()
        if variant not in SETTINGS:
            raise ConfigError(f"unknown CMNeXt variant {variant!r} (known: {', '.join(SETTINGS)})")
        modalities = tuple(modalities)
        if not modalities or len(set(modalities)) != len(modalities):
            raise ConfigError(f"modalities must be non-empty and unique, got {modalities}")
        dims, depths = SETTINGS[variant]
        self.variant, self.modalities, self.num_classes = variant, modalities, num_classes
        self.model_name = f"cmnext_mit_{variant}"
        self.fill = "zero"
        self.backbone = CMNeXtBackbone(dims, depths, len(modalities) - 1, drop_path_rate)
        self.decode_head = SegFormerHead(dims, num_classes, embed_dim or HEAD_WIDTH.get(variant, 512), dropout)
        self.apply(_init_weights)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def map_checkpoint(self, state: Mapping[str, Tensor], layout: Layout, allow_missing_head: bool
                       ) -> tuple[dict[str, Tensor], set[str]]:
        """A released file -> this model's keys (the names are the release's own) and the keys left at init.

        CMNeXt files must have this model's modality count (read from the auxiliary LayerNorms); an RGB-only
        file (the mmseg layout) fits a one-modality model; an ImageNet MiT file (``pretrained``) initialises
        the RGB branch, leaving the auxiliary branch and the head at init.
        """
        m = len(self.modalities)
        if layout.name == "cmnext":
            found = checkpoint_modalities(state)
            if found != m:
                raise ConfigError(f"this CMNeXt checkpoint was trained on {found} modalities; the model is built "
                                  f"for {m} ({', '.join(self.modalities)})")
            return dict(state), set()
        if layout.name == "mmseg":
            if m != 1:
                raise ConfigError(f"this is an RGB-only checkpoint ({layout.description}); the model is built for "
                                  f"{m} modalities ({', '.join(self.modalities)}): score it on rgb alone "
                                  "(--modalities rgb)")
            return {k: v for k, v in state.items() if not k.startswith(("decode_head.conv_seg.", "auxiliary_head."))
                    }, set()
        if layout.name == "encoder" and allow_missing_head:
            rgb = {"backbone." + k: v for k, v in state.items() if k not in ("head.weight", "head.bias")}
            own = self.state_dict()
            return rgb, {k for k in own if k not in rgb}
        raise ConfigError(f"a {layout.description} checkpoint does not fit {self.model_name}")

    def _inputs(self, modalities: Mapping[str, Tensor], present: Present) -> list[Tensor]:
        given = [n for n in self.modalities if n in modalities]
        if not given:
            raise ValueError(f"no input for any of {list(self.modalities)} (given: {sorted(modalities)})")
        ref = modalities[given[0]]
        mask = present_mask(self.modalities, present, ref.shape[0], ref.device)
        inputs = []
        for i, n in enumerate(self.modalities):
            if n not in modalities:
                if mask[:, i].any():
                    raise ValueError(f"modality {n!r} is marked present but not given")
                inputs.append(torch.zeros_like(ref))
                continue
            x = modalities[n]
            if tuple(x.shape) != tuple(ref.shape):
                raise ValueError(f"modalities must all be [B, C, H, W] of one shape, got {tuple(x.shape)} for "
                                 f"{n!r} and {tuple(ref.shape)}")
            keep = mask[:, i].view(-1, 1, 1, 1)
            inputs.append(x if bool(keep.all()) else torch.where(keep, x, 0.0))
        return inputs

    def forward(self, modalities: Mapping[str, Tensor], present: Present = None, fill: str | None = None) -> Tensor:
        """modalities: name -> [B, 3, H, W]; present: bool [B, M] or names (None: all). Logits at input size."""
        if fill not in (None, "zero"):
            raise ConfigError(f"model {self.model_name} supports fill zero only, not {fill!r}")
        inputs = self._inputs(modalities, present)
        logits = self.decode_head(self.backbone(inputs[0], inputs[1:]))
        return F.interpolate(logits, size=inputs[0].shape[-2:], mode="bilinear", align_corners=False)


def _init_weights(m: nn.Module) -> None:
    """The release's init of the whole model: trunc-normal(0.02) linears, unit norms, He-normal convs whose
    fan-out counts every output channel (the release's ``fan_out // m.groups`` is a no-op)."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


DEFAULT_MODALITIES: tuple[str, ...] = ("rgb", "depth", "event", "lidar")


def _cmnext(
    variant: str,
    *,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    num_classes: int = 25,
    embed_dim: int | None = None,
    fill: str = "zero",
    drop_path_rate: float = 0.1,
    dropout: float = 0.1,
    pretrained: str | os.PathLike | None = None,
) -> CMNeXt:
    if fill != "zero":
        raise ConfigError(f"model cmnext_mit_{variant} supports fill zero only, not {fill!r}")
    model = CMNeXt(variant, modalities, num_classes, embed_dim, drop_path_rate, dropout)
    if pretrained:
        load_pretrained(model, pretrained, allow_missing_head=True)
    return model


@MODELS.register()
@builds(CMNeXt, options=_cmnext)
def cmnext_mit_b0(**kw: Any) -> CMNeXt:
    return _cmnext("b0", **kw)


@MODELS.register()
@builds(CMNeXt, options=_cmnext)
def cmnext_mit_b1(**kw: Any) -> CMNeXt:
    return _cmnext("b1", **kw)


@MODELS.register()
@builds(CMNeXt, options=_cmnext)
def cmnext_mit_b2(**kw: Any) -> CMNeXt:
    return _cmnext("b2", **kw)


@MODELS.register()
@builds(CMNeXt, options=_cmnext)
def cmnext_mit_b3(**kw: Any) -> CMNeXt:
    return _cmnext("b3", **kw)


@MODELS.register()
@builds(CMNeXt, options=_cmnext)
def cmnext_mit_b4(**kw: Any) -> CMNeXt:
    return _cmnext("b4", **kw)


@MODELS.register()
@builds(CMNeXt, options=_cmnext)
def cmnext_mit_b5(**kw: Any) -> CMNeXt:
    return _cmnext("b5", **kw)


@MODELS.register()
@builds(CMNeXt, options=_cmnext)
def cmnext_mit_test(**kw: Any) -> CMNeXt:
    """Tiny CMNeXt (widths 4/8/10/16, one block per stage, head 32; the harness's tiny configuration): tests, CI."""
    return _cmnext("test", **kw)
