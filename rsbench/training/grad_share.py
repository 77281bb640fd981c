"""Each loss term's pull on the encoder, measured (``--log-grad-share``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

GRAD_SHARE_EVERY = 5  # measure on every 5th step (10 per log line)


def gradient_shares(params: list[nn.Parameter], terms: dict[str, Tensor], weights: dict[str, float],
                    reference: str = "ohem_ce") -> dict[str, float]:
    """Each weighted term's gradient norm on ``params`` and its ratio to ``reference``'s (the task loss).

    Why: the README's account of which term drives training must be a measurement, not a reading of
    loss values (a term's size says little about its pull on the weights). One extra backward pass
    per term, so it runs only when asked and on every ``GRAD_SHARE_EVERY``-th step.
    """
    norms = {}
    for name, value in terms.items():
        grads = torch.autograd.grad(weights[name] * value, params, retain_graph=True, allow_unused=True)
        norms[name] = math.sqrt(sum(float(g.detach().double().pow(2).sum()) for g in grads if g is not None))
    ref = norms.get(reference) or norms.get("ce")
    out = {f"gnorm/{k}": v for k, v in norms.items()}
    if ref:
        out.update({f"gshare/{k}": v / ref for k, v in norms.items() if k not in (reference, "ce")})
    return out
