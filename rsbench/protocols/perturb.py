"""Input changes drawn per sample: random-missing masks (RMM) and noisy modalities (NM).

Every draw comes from a generator seeded with ``mix(seed, sample index, modality index, stream)``,
so a sample's change never depends on its batch position, the batch size, the worker count or the
rank, and a modality's mask is the same in every subset of a protocol (common random numbers).
The integers are mixed explicitly (``rsbench.seeding.mix``, splitmix64), not through Python's ``hash``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rsbench.protocols.card import ProtocolCard
from rsbench.protocols.conditions import EVENT_MODALITIES
from rsbench.seeding import mix

__all__ = ["apply_change", "mix", "noise", "rmm"]


def _generator(seed: int, sample: int, modality: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix(seed, sample, modality, stream))


def rmm(x: Tensor, ids: Sequence[int], modality: int, card: ProtocolCard) -> Tensor:
    """Zero each element of ``x [B, C, H, W]`` with probability ``card.rate``, drawn per sample."""
    masks = [torch.rand(x.shape[1:], generator=_generator(card.seed, i, modality, 0)) < card.rate for i in ids]
    return x.masked_fill(torch.stack(masks).to(x.device), 0.0)


def noise(x: Tensor, ids: Sequence[int], modality: int, name: str, card: ProtocolCard) -> Tensor:
    """Salt-and-pepper (sample's own max/min) then, but for events, additive Gaussian noise."""
    out = []
    for b, i in enumerate(ids):
        g = _generator(card.seed, i, modality, 1)
        xi = x[b]
        u = torch.rand(xi.shape, generator=g).to(x.device)
        half = card.density / 2
        y = torch.where(u < half, xi.max(), torch.where(u < card.density, xi.min(), xi))
        if name not in EVENT_MODALITIES and card.std:
            y = y + card.std * torch.randn(xi.shape, generator=g).to(x.device)
        out.append(y)
    return torch.stack(out)


def apply_change(kind: str, x: Tensor, ids: Sequence[int], modality: int, name: str, card: ProtocolCard) -> Tensor:
    if kind == "rmm":
        return rmm(x, ids, modality, card)
    if kind == "noise":
        return noise(x, ids, modality, name, card)
    if "@" in kind:
        from rsbench.corruptions import all_corruptions, corrupt

        corruption, severity = kind.rsplit("@", 1)
        stream = 2 + all_corruptions().index(corruption)
        return corrupt(x, ids, name, corruption, int(severity), lambda i: mix(card.seed, i, modality, stream))
    raise ValueError(f"unknown input change {kind!r}")
