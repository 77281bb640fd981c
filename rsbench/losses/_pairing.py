"""Teacher -> student modality pairings shared by HPDM and RRM."""

from __future__ import annotations

import torch
from torch import Tensor

PAIRINGS = ("same", "shuffle", "random")


def draw_pairing(pairing: str | Tensor, num_modalities: int, generator: torch.Generator | None = None) -> Tensor:
    """Student modality index for each teacher modality, LongTensor ``[M]`` on the CPU.

    ``pi[m]`` is the student modality taught by teacher modality ``m``.

    - ``same``: ``pi = arange(M)`` (intra-modal, released ``drop`` recipe).
    - ``shuffle``: ``pi = randperm(M, generator)``, one permutation (the paper).
    - ``random``: ``pi = randint(0, M, (M,), generator)``, each teacher modality draws its student
      modality independently, repeats allowed (released ``zero`` recipe).

    A tensor is validated and returned as is, so callers can share one draw between losses.
    """
    m = num_modalities
    if isinstance(pairing, Tensor):
        if pairing.shape != (m,) or pairing.dtype != torch.long:
            raise ValueError(f"pairing must be a LongTensor [{m}], got {pairing.dtype} {tuple(pairing.shape)}")
        if bool(((pairing < 0) | (pairing >= m)).any()):
            raise ValueError(f"pairing indices must lie in [0, {m})")
        return pairing
    if pairing == "same":
        return torch.arange(m)
    if pairing == "shuffle":
        return torch.randperm(m, generator=generator)
    if pairing == "random":
        return torch.randint(0, m, (m,), generator=generator)
    raise ValueError(f"unknown pairing {pairing!r}; expected one of {PAIRINGS}")
