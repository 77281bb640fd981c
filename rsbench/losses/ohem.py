"""Segmentation cross-entropy: plain and OHEM (online hard example mining), ignore index 255.

OHEM as in the RobustSeg/CMNeXt teacher: keep the pixels whose probability of the true class is
below ``thresh`` (i.e. CE loss above ``-log(thresh)``), but at least ``n_min = n_valid // 16`` of the
hardest valid pixels, pooled over the whole batch; the loss is the mean over the kept pixels.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from rsbench.losses._registry import LOSSES


def _zero(logits: Tensor) -> Tensor:
    """A zero that keeps the graph (so ``backward`` works when nothing is kept)."""
    return logits.sum() * 0.0


def ohem_cross_entropy(
    logits: Tensor, labels: Tensor, thresh: float = 0.7, min_kept_div: int = 16, ignore_index: int = 255
) -> Tensor:
    """OHEM cross-entropy.

    Args:
        logits: ``[B, K, H, W]`` float.
        labels: ``[B, H, W]`` long, ``ignore_index`` = ignore.
        thresh: keep pixels with ``p(true class) < thresh``.
        min_kept_div: keep at least ``n_valid // min_kept_div`` hardest valid pixels.

    Returns:
        Scalar; 0 when no valid pixel (or nothing kept) instead of NaN.
    """
    loss = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")  # [B, H, W]
    valid = labels != ignore_index
    vl = loss[valid]
    n_min = vl.numel() // min_kept_div
    hard = vl > -math.log(thresh)
    n_hard = int(hard.sum())
    if n_hard >= max(n_min, 1):
        return vl[hard].mean()
    if n_min == 0:
        return _zero(logits)
    return vl.topk(n_min).values.mean()


@LOSSES.register("ohem_ce")
class OhemCrossEntropy(nn.Module):
    """OHEM cross-entropy module; ``forward(logits [B,K,H,W], labels [B,H,W]) -> scalar``."""

    consumes = {"logits": "logits", "labels": "labels"}
    """Step inputs passed to ``forward``, by parameter name (``rsbench.training.step``)."""

    def __init__(self, thresh: float = 0.7, min_kept_div: int = 16, ignore_index: int = 255) -> None:
        super().__init__()
        if not 0.0 < thresh <= 1.0:
            raise ValueError(f"thresh must be in (0, 1], got {thresh}")
        self.thresh, self.min_kept_div, self.ignore_index = thresh, min_kept_div, ignore_index

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return ohem_cross_entropy(logits, labels, self.thresh, self.min_kept_div, self.ignore_index)


@LOSSES.register("ce")
class CrossEntropy(nn.Module):
    """Mean cross-entropy over valid pixels; 0 (not NaN) when every pixel is ignored."""

    consumes = {"logits": "logits", "labels": "labels"}
    """Step inputs passed to ``forward``, by parameter name (``rsbench.training.step``)."""

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index, reduction="sum")
        n_valid = (labels != self.ignore_index).sum()
        return loss / n_valid.clamp(min=1).to(loss.dtype)


__all__ = ["CrossEntropy", "OhemCrossEntropy", "ohem_cross_entropy"]
