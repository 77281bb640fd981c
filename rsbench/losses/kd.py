"""Logit knowledge distillation (Hinton et al.), as used by the RobustSeg student.

``KL(softmax(z_T / T) || softmax(z_S / T))`` summed over classes, then averaged over all
``B*K*H*W`` entries (torch ``KLDivLoss(reduction="mean")`` semantics: per-pixel KL divided by K),
ignore pixels included, as in the released code. Multiplied by ``T**2`` (the usual gradient-scale
correction; a no-op at the published ``T = 1``). The teacher is detached.

The gradient is written out, ``T * (softmax(z_S / T) - softmax(z_T / T)) / (B*K*H*W)``: two passes over
the logits instead of autograd's six (the full-resolution logits make this the largest of the losses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsbench.losses._registry import LOSSES


class _KD(torch.autograd.Function):
    """The KD value, with its closed-form gradient with respect to the student logits."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, student: Tensor, teacher: Tensor, temperature: float
    ) -> Tensor:
        log_s = F.log_softmax(student if temperature == 1 else student / temperature, dim=1)
        log_t = F.log_softmax(teacher if temperature == 1 else teacher / temperature, dim=1)
        p_t = log_t.exp()
        value = (p_t * log_t.sub_(log_s)).mean() * temperature**2
        ctx.save_for_backward(log_s, p_t)
        ctx.temperature, ctx.dtype = temperature, student.dtype
        return value

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        log_s, p_t = ctx.saved_tensors
        scale = grad * (ctx.temperature / log_s.numel())
        return log_s.exp().sub_(p_t).mul_(scale).to(ctx.dtype), None, None


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Logit KD. Both logits ``[B, K, H, W]`` (or any ``[B, K, ...]``); returns a scalar."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}")
    return _KD.apply(student_logits, teacher_logits.detach(), temperature)


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
