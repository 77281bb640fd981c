"""Shared-encoder multi-modal segmentor (the RobustSeg / SegFormer model, METHOD.md section 1).

One encoder, weights shared by all modalities, encodes each modality on its own (the M
modalities of a batch go through it as one mini-batch of B*M). At each of the four
stages the per-modality maps are averaged and the decode head reads the four averages.
Modalities never meet inside the encoder, so features encoded once can be reused for
every modality subset: ``fuse_decode(encode(x), present)`` equals ``forward(x, present)``
(in eval mode; an encoder with BatchNorm in train mode mixes the mini-batch statistics).

Missing modalities, per sample, as ``present`` [B, M] says:
- ``drop``: the fusion is the mean over the present modalities only;
- ``zero``: absent inputs are set to 0 (after normalisation), still encoded, and the
  fusion is the mean over all M modalities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsbench.errors import ConfigError
from rsbench.models.contract import FILLS, Capabilities, Present, present_mask
from rsbench.models.head import SegFormerHead

if TYPE_CHECKING:
    from rsbench.models.folded import FoldedHead

FillMode = Literal["drop", "zero"]


class MultiModalSegmentor(nn.Module):
    """Shared encoder + per-stage mean fusion + SegFormer head.

    Args:
        encoder: module mapping [N, 3, H, W] to 4 maps [N, C_j, H_j, W_j], with a timm-style
            ``feature_info`` (list of dicts with ``num_chs`` and ``reduction``).
        modalities: modality names; their order is the M axis of features and ``present``.
        num_classes: K, the number of output classes.
        embed_dim: the decode head's embedding width.
        fill: default handling of absent modalities, ``"drop"`` or ``"zero"``.
        dropout: dropout before the head's classifier.
    """

    architecture = "segformer"
    capabilities = Capabilities(fills=("drop", "zero"), separable=True, features=True)
    """Modalities never meet inside the encoder: encoded once, reused by every condition; both fills."""

    def __init__(
        self,
        encoder: nn.Module,
        modalities: Sequence[str],
        num_classes: int,
        embed_dim: int = 256,
        fill: FillMode = "drop",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        modalities = tuple(modalities)
        if not modalities or len(set(modalities)) != len(modalities):
            raise ConfigError(f"modalities must be non-empty and unique, got {modalities}")
        self.modalities: tuple[str, ...] = modalities
        self.fill: FillMode = _check_fill(fill)
        self.num_classes = num_classes
        self.encoder = encoder
        self.head = SegFormerHead([int(f["num_chs"]) for f in encoder.feature_info], num_classes, embed_dim, dropout)

    def present_mask(self, present: Present, batch_size: int, device: torch.device | None = None) -> Tensor:
        """``present`` as a bool [B, M] tensor (``rsbench.models.contract.present_mask``)."""
        return present_mask(self.modalities, present, batch_size, device)

    def encode_one(self, x: Tensor) -> list[Tensor]:
        """One modality's input [N, 3, H, W] -> its 4 stage maps [N, C_j, H_j, W_j] (the shared encoder)."""
        return list(self.encoder(x))

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def folded_head(self) -> FoldedHead | None:
        """The head split per modality slot for subset evaluation (eval mode, the SegFormer head), else None."""
        if self.training or type(self.head) is not SegFormerHead:
            return None
        from rsbench.models.folded import FoldedHead

        return FoldedHead(self)

    def encode(self, modalities: Mapping[str, Tensor], names: Iterable[str] | None = None) -> list[Tensor]:
        """Encode each modality independently with the shared encoder.

        Args:
            modalities: name -> [B, 3, H, W]; names this model does not use are ignored.
            names: the modalities to encode (default: all of ``self.modalities``, which must
                then all be given). The slots of the others hold zeros: use this only with
                ``drop`` fusion and those slots marked absent (e.g. a batch-wide dropout).

        Returns:
            4 tensors [B, M, C_j, H_j, W_j], M in ``self.modalities`` order.
        """
        wanted = set(self.modalities if names is None else names)
        unknown = sorted(wanted - set(self.modalities))
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; this model has {list(self.modalities)}")
        order = [n for n in self.modalities if n in wanted]
        if not order:
            raise ValueError("nothing to encode: no modality selected")
        absent = [n for n in order if n not in modalities]
        if absent:
            raise ValueError(f"modalities {absent} are to be encoded but not given (given: {sorted(modalities)})")
        shapes = {tuple(modalities[n].shape) for n in order}
        if len(shapes) != 1 or len(next(iter(shapes))) != 4:
            raise ValueError(f"modalities must all be [B, C, H, W] of one shape, got {sorted(shapes)}")
        x = torch.stack([modalities[n] for n in order], dim=1)  # [B, m, C, H, W]
        b, m = x.shape[:2]
        feats = self.encoder(x.flatten(0, 1))
        if m == len(self.modalities):
            return [f.unflatten(0, (b, m)) for f in feats]
        idx = torch.tensor([self.modalities.index(n) for n in order], device=x.device)
        out = []
        for f in feats:
            full = f.new_zeros(b, len(self.modalities), *f.shape[1:])
            full[:, idx] = f.unflatten(0, (b, m))
            out.append(full)
        return out

    def fuse(
        self, features: Sequence[Tensor], present: Present = None, fill: FillMode | None = None
    ) -> list[Tensor]:
        """Per-stage fusion: 4 x [B, M, C, H, W] -> 4 x [B, C, H, W] (masked mean or mean over all M)."""
        mode = _check_fill(fill or self.fill)
        mask = self.present_mask(present, features[0].shape[0], features[0].device)
        if mode == "zero":
            return [f.mean(dim=1) for f in features]
        w = mask.to(features[0].dtype)
        w = (w / w.sum(dim=1, keepdim=True))[:, :, None, None, None]
        return [(f * w).sum(dim=1) for f in features]

    def fuse_decode(
        self,
        features: Sequence[Tensor],
        present: Present = None,
        out_size: tuple[int, int] | None = None,
        fill: FillMode | None = None,
    ) -> Tensor:
        """Fuse the per-modality features of ``encode`` and decode.

        With ``zero`` the features must come from encoding every slot, absent ones from
        zero-filled inputs. Returns logits [B, K, *out_size] (stride 4 when out_size is None).
        """
        logits = self.head(self.fuse(features, present, fill))
        if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
        return logits

    def forward_features(
        self, modalities: Mapping[str, Tensor], present: Present = None, fill: FillMode | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Like ``forward`` but also returns the per-modality features (4 x [B, M, C_j, H_j, W_j]).

        ``drop`` encodes only the modalities present in some sample (others' slots are zeros);
        ``zero`` encodes all M, absent inputs zero-filled per sample (a name absent from
        ``modalities`` and from every sample may be left out of the dict).
        """
        mode = _check_fill(fill or self.fill)
        given = [n for n in self.modalities if n in modalities]
        if not given:
            raise ValueError(f"no input for any of {list(self.modalities)} (given: {sorted(modalities)})")
        ref = modalities[given[0]]
        mask = self.present_mask(present, ref.shape[0], ref.device)
        if mode == "zero":
            inputs = {}
            for i, n in enumerate(self.modalities):
                if n not in modalities:
                    if mask[:, i].any():
                        raise ValueError(f"modality {n!r} is marked present but not given")
                    inputs[n] = torch.zeros_like(ref)
                else:
                    keep = mask[:, i].view(-1, 1, 1, 1)
                    inputs[n] = modalities[n] if bool(keep.all()) else torch.where(keep, modalities[n], 0.0)
            feats = self.encode(inputs)
        else:
            feats = self.encode(modalities, [n for i, n in enumerate(self.modalities) if mask[:, i].any()])
        return self.fuse_decode(feats, mask, ref.shape[-2:], mode), feats

    def forward(
        self, modalities: Mapping[str, Tensor], present: Present = None, fill: FillMode | None = None
    ) -> Tensor:
        """modalities: name -> [B, 3, H, W]; present: bool [B, M] or names (None: all).

        Returns logits [B, K, H, W] at the input resolution. ``fill`` overrides the default.
        """
        return self.forward_features(modalities, present, fill)[0]


def _check_fill(fill: str) -> FillMode:
    if fill not in FILLS:
        raise ConfigError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    return fill  # type: ignore[return-value]
