"""Per-batch random modality dropout for the RobustSeg student (METHOD.md section 3).

The number of kept modalities is ``k ~ Uniform{1..M}``, then a uniformly random subset of size
``k`` is kept; the same subset for every sample of the batch. Never drops every modality.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_modality_mask(
    num_modalities: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> Tensor:
    """Draw one keep-mask: bool ``[M]``, ``True`` = modality kept; at least one ``True``.

    Draws from ``generator`` (CPU): ``k = randint(1, M + 1)``, then ``randperm(M)[:k]`` are kept.
    """
    if num_modalities < 1:
        raise ValueError(f"num_modalities must be >= 1, got {num_modalities}")
    k = int(torch.randint(1, num_modalities + 1, (1,), generator=generator))
    kept = torch.randperm(num_modalities, generator=generator)[:k]
    mask = torch.zeros(num_modalities, dtype=torch.bool)
    mask[kept] = True
    return mask.to(device) if device is not None else mask


def expand_mask(mask: Tensor, batch_size: int) -> Tensor:
    """Broadcast a per-batch mask ``[M]`` to ``[B, M]`` (same subset for every sample)."""
    if mask.ndim != 1:
        raise ValueError(f"mask must be 1-D [M], got shape {tuple(mask.shape)}")
    return mask[None].expand(batch_size, -1)


class ModalityDropout:
    """Stateful sampler holding its generator; ``sampler()`` -> bool ``[M]``, ``sampler(B)`` -> ``[B, M]``."""

    def __init__(self, num_modalities: int, generator: torch.Generator | None = None) -> None:
        self.num_modalities = num_modalities
        self.generator = generator

    def __call__(self, batch_size: int | None = None) -> Tensor:
        mask = sample_modality_mask(self.num_modalities, self.generator)
        return mask if batch_size is None else expand_mask(mask, batch_size)
