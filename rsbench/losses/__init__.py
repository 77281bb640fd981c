"""Training losses, registered by name: ``create_loss("hpdm", num_classes=25)``.

Registered: ``ce``, ``ohem_ce`` (segmentation), ``kd`` (logit distillation), ``hpdm`` (hybrid
prototype distillation) and ``rrm`` (representation regularisation), the last two from RobustSeg.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from rsbench.losses._pairing import PAIRINGS, draw_pair_table, draw_pairing, pair_indices
from rsbench.losses._registry import LOSSES
from rsbench.losses.hpdm import HPDMLoss, class_prototypes, hpdm_loss
from rsbench.losses.kd import KDLoss, kd_loss
from rsbench.losses.ohem import CrossEntropy, OhemCrossEntropy, ohem_cross_entropy
from rsbench.losses.rrm import RRMLoss, rrm_inverse_fisher, rrm_loss


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name``; ``None`` kwargs are dropped so unset options keep defaults."""
    return LOSSES.get(name)(**{k: v for k, v in kwargs.items() if v is not None})


__all__ = [
    "LOSSES",
    "PAIRINGS",
    "CrossEntropy",
    "HPDMLoss",
    "KDLoss",
    "OhemCrossEntropy",
    "RRMLoss",
    "class_prototypes",
    "create_loss",
    "draw_pair_table",
    "draw_pairing",
    "hpdm_loss",
    "kd_loss",
    "ohem_cross_entropy",
    "pair_indices",
    "rrm_inverse_fisher",
    "rrm_loss",
]
