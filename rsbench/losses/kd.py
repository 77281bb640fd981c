"""Logit knowledge distillation (Hinton et al.), as used by the RobustSeg student.

``KL(softmax(z_T / T) || softmax(z_S / T))`` summed over classes, then averaged over all
``B*K*H*W`` entries (torch ``KLDivLoss(reduction="mean")`` semantics: per-pixel KL divided by K),
ignore pixels included, as in the released code. Multiplied by ``T**2`` (the usual gradient-scale
correction; a no-op at the published ``T = 1``). The teacher is detached.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rsbench.losses._registry import LOSSES


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Logit KD. Both logits ``[B, K, H, W]`` (or any ``[B, K, ...]``); returns a scalar."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}")
    log_s = F.log_softmax(student_logits / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    return (log_t.exp() * (log_t - log_s)).mean() * temperature**2


@LOSSES.register("kd")
class KDLoss(nn.Module):
    """Logit KD module; ``forward(student_logits, teacher_logits) -> scalar``."""

    consumes = {"student_logits": "logits", "teacher_logits": "teacher_logits"}
    """Step inputs passed to ``forward``, by parameter name (``rsbench.training.step``)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        return kd_loss(student_logits, teacher_logits, self.temperature)
