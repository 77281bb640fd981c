"""The learning-rate schedule and the optimiser's parameter groups (published SegFormer/CMNeXt recipe).

The schedule is a function of (iteration, the card's ``iters``): linear warm-up, then poly decay to 0
at ``iters``. Extending a run (``--resume --iters N`` with N larger) redefines the decay over the new
total from the iteration where it resumes: the learning rate steps up to ``lr_factor(it, N)`` there,
and the checkpoint records the change (``schedule`` entries: ``{"at": it, "iters": N, "was": old}``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from rsbench.cards import MethodCard


def lr_factor(it: int, card: MethodCard) -> float:
    """Linear warm-up from ``warmup_ratio`` to 1, then poly decay to 0 (per iteration, published)."""
    if it < card.warmup_iters:
        return card.warmup_ratio + (1.0 - card.warmup_ratio) * it / card.warmup_iters
    span = max(1, card.iters - card.warmup_iters)
    return max(0.0, 1.0 - (it - card.warmup_iters) / span) ** card.poly_power


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices and kernels, none on 1-D params (norms, biases)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
