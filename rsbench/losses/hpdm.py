"""Hybrid Prototype Distillation (HPDM) from RobustSeg.

Paper: "Robust Multimodal Segmentation with Representation Regularization and Hybrid Prototype
Distillation", arXiv 2505.12861 (later version: RMMSS). For each sample ``b``, stage ``j`` and
modality, class prototypes ``P[c]`` = mean of the stage-j features over the pixels labelled ``c``
(labels nearest-downsampled to the feature size, ignore pixels excluded, absent classes -> zero
vector), a ``K x C`` matrix. The loss per teacher/student pair is
``KL(softmax_K(P_T) || softmax_K(P_S))`` (softmax over the class axis, separately per channel,
no temperature) averaged over the ``K*C`` entries; summed over stages and pairs, divided by ``B``::

    L = (1/B) sum_b sum_j sum_m  mean_{k,c} KL-term(P_T[b, j, m], P_S[b, j, pi(m)])

Differences from the released code (offered as options, see ``class_prototypes`` / ``draw_pairing``):

- prototypes: default ``norm="mean"`` (true mean); the release divides the class sum by the pixel
  count twice (``norm="count_squared"``), which makes the small stage-4 maps dominate;
- pairing: default ``shuffle`` (one random permutation per call, shared by all stages and samples,
  as the paper writes it); ``same`` is the released main (``drop``) recipe (``mmkd/PCUMD.py``),
  ``random_each`` (a student slot drawn anew per sample, stage and teacher modality) the released
  zero recipe (``mmkd/PCUMD_zero_padding_random.py``). See ``rsbench.losses._pairing``.

With ``norm="count_squared"`` and ``same``/``random_each`` pairing the values equal the released
functions' on recorded inputs (``tests/test_released.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsbench.losses._pairing import PAIRINGS, draw_pair_table, stage_pair_indices
from rsbench.losses._registry import LOSSES

NORMS = ("mean", "count_squared")


def downsample_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize (torch ``mode="nearest"``: source index ``floor(i * in / out)``).

    ``labels [B, H, W]`` long -> ``[B, h, w]`` long.
    """
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def class_prototypes(
    features: Tensor, labels: Tensor, num_classes: int, norm: str = "mean", ignore_index: int = 255
) -> Tensor:
    """Per-class masked feature averages.

    Args:
        features: ``[B, M, C, h, w]`` float.
        labels: ``[B, H, W]`` long; nearest-downsampled to ``(h, w)``; ``ignore_index`` excluded.
        num_classes: K; labels other than ``ignore_index`` must lie in ``[0, K)``.
        norm: ``mean`` (sum / n) or ``count_squared`` (sum / n**2, released quirk).

    Returns:
        ``[B, M, K, C]``; rows of classes absent from the sample are zero.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown prototype norm {norm!r}; expected one of {NORMS}")
    return _prototypes(features, label_onehot(labels, features.shape[-2:], num_classes, ignore_index, features.dtype),
                       norm)


def label_onehot(
    labels: Tensor, size: Sequence[int], num_classes: int, ignore_index: int, dtype: torch.dtype
) -> Tensor:
    """Labels nearest-downsampled to ``size``, one-hot ``[B, h*w, K]``; ignore pixels are all-zero rows."""
    lab = downsample_labels(labels, tuple(size)).flatten(1)
    valid = lab != ignore_index
    return F.one_hot(torch.where(valid, lab, 0), num_classes).to(dtype) * valid[..., None]


def _prototypes(features: Tensor, onehot: Tensor, norm: str) -> Tensor:
    b, m, c, h, w = features.shape
    sums = torch.einsum("bmcp,bpk->bmkc", features.reshape(b, m, c, h * w), onehot)
    counts = onehot.sum(1).clamp(min=1.0)[:, None, :, None]  # [B, 1, K, 1]
    return sums / (counts if norm == "mean" else counts * counts)


def prototype_kl(student_protos: Tensor, teacher_protos: Tensor) -> Tensor:
    """``KL(softmax_K(P_T) || softmax_K(P_S))`` averaged over the K*C entries: ``[..., K, C] -> [...]``."""
    log_s = F.log_softmax(student_protos, dim=-2)
    log_t = F.log_softmax(teacher_protos, dim=-2)
    return (log_t.exp() * (log_t - log_s)).mean(dim=(-2, -1))


def hpdm_loss(
    student_feats: Sequence[Tensor],
    teacher_feats: Sequence[Tensor],
    labels: Tensor,
    num_classes: int,
    pairing: str | Tensor = "shuffle",
    norm: str = "mean",
    generator: torch.Generator | None = None,
    ignore_index: int = 255,
    slot_present: Tensor | None = None,
) -> Tensor:
    """HPDM loss over all stages.

    Args:
        student_feats, teacher_feats: per stage ``[B, M, C_j, h_j, w_j]``, same modality order.
        labels: ``[B, H, W]`` long.
        pairing: a scheme of ``PAIRINGS``, an ``[M]`` draw or a ``[B, S, M]`` pair table
            (``rsbench.losses._pairing``); a scheme is drawn once per call with ``generator``.
        slot_present: bool ``[M]``, student slots holding features; pairs on other slots skipped.

    Returns:
        Scalar: sum over stages and pairs of the per-pair KL, divided by the batch size.
    """
    if len(student_feats) != len(teacher_feats):
        raise ValueError(f"{len(student_feats)} student stages vs {len(teacher_feats)} teacher stages")
    b, m = teacher_feats[0].shape[:2]
    if norm not in NORMS:
        raise ValueError(f"unknown prototype norm {norm!r}; expected one of {NORMS}")
    table = draw_pair_table(pairing, b, len(teacher_feats), m, generator)
    pairs = stage_pair_indices(table, slot_present, labels.device)
    total = teacher_feats[0].new_zeros(())
    for fs, ft, (bi, si, ti) in zip(student_feats, teacher_feats, pairs, strict=True):
        if fs.shape != ft.shape:
            raise ValueError(f"stage shapes differ: {tuple(fs.shape)} vs {tuple(ft.shape)}")
        onehot = label_onehot(labels, fs.shape[-2:], num_classes, ignore_index, fs.dtype)  # shared by both sides
        ps, pt = _prototypes(fs, onehot, norm), _prototypes(ft.detach(), onehot, norm)
        total = total + prototype_kl(ps[bi, si], pt[bi, ti]).sum()
    return total / b


@LOSSES.register("hpdm")
class HPDMLoss(nn.Module):
    """HPDM module; ``forward(student_feats, teacher_feats, labels, generator=None, pairing=None, slot_present=None)``.

    ``pairing`` in ``forward`` (an ``[M]`` draw or a ``[B, S, M]`` table) overrides the configured scheme.
    """

    consumes = {"student_feats": "features", "teacher_feats": "teacher_features", "labels": "labels",
                "pairing": "pairing", "slot_present": "slot_present"}
    """Step inputs passed to ``forward``, by parameter name (``rsbench.training.step``)."""

    def __init__(self, num_classes: int, pairing: str = "shuffle", norm: str = "mean", ignore_index: int = 255) -> None:
        super().__init__()
        if pairing not in PAIRINGS:
            raise ValueError(f"unknown pairing {pairing!r}")
        if norm not in NORMS:
            raise ValueError(f"unknown prototype norm {norm!r}")
        self.num_classes, self.pairing, self.norm, self.ignore_index = num_classes, pairing, norm, ignore_index

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        labels: Tensor,
        generator: torch.Generator | None = None,
        pairing: Tensor | None = None,
        slot_present: Tensor | None = None,
    ) -> Tensor:
        scheme = self.pairing if pairing is None else pairing
        return hpdm_loss(
            student_feats, teacher_feats, labels, self.num_classes, scheme, self.norm, generator, self.ignore_index,
            slot_present,
        )
