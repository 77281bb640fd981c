"""Teacher -> student modality pairings for HPDM and RRM.

A pairing says which student modality slot each teacher modality teaches. Internally it is a
*pair table*, a LongTensor ``[B, S, M]``: ``table[b, j, m]`` is the student slot taught by teacher
modality ``m`` at stage ``j`` for sample ``b``. Schemes:

- ``same``: ``m -> m`` (intra-modal). The released main (``drop``) recipe: its student encodes the
  kept modalities only and slot ``k`` is distilled from teacher modality ``index[k]``, the same
  modality (``mmkd/RUMD.py``, ``mmkd/PCUMD.py``); also the released zero recipe's RRM, which pairs
  slot to slot over all (zero-filled) slots (``mmkd/RUMD_zero_padding_all.py``).
- ``shuffle``: one ``randperm(M)`` per draw, shared by every sample and stage (the paper's reading).
- ``random``: ``randint(M)`` per teacher modality, shared by every sample and stage.
- ``random_each``: ``randint(M)`` drawn anew for every (sample, stage, teacher modality), as the
  released zero recipe's HPDM does (``mmkd/PCUMD_zero_padding_random.py`` takes element ``k`` of a
  fresh ``random.sample(range(M), M)`` inside its sample, stage and modality loops: a uniform draw).
"""

from __future__ import annotations

import torch
from torch import Tensor

PAIRINGS = ("same", "shuffle", "random", "random_each")


def draw_pairing(pairing: str | Tensor, num_modalities: int, generator: torch.Generator | None = None) -> Tensor:
    """Student modality index for each teacher modality, LongTensor ``[M]`` on the CPU.

    For the schemes that are shared by all samples and stages (``same``, ``shuffle``, ``random``).
    A tensor is validated and returned as is, so callers can share one draw between losses.
    """
    m = num_modalities
    if isinstance(pairing, Tensor):
        if pairing.shape != (m,) or pairing.dtype != torch.long:
            raise ValueError(f"pairing must be a LongTensor [{m}], got {pairing.dtype} {tuple(pairing.shape)}")
        _check_range(pairing, m)
        return pairing
    if pairing == "same":
        return torch.arange(m)
    if pairing == "shuffle":
        return torch.randperm(m, generator=generator)
    if pairing == "random":
        return torch.randint(0, m, (m,), generator=generator)
    if pairing == "random_each":
        raise ValueError("'random_each' draws per sample and stage: use draw_pair_table")
    raise ValueError(f"unknown pairing {pairing!r}; expected one of {PAIRINGS}")


def draw_pair_table(
    pairing: str | Tensor, batch: int, stages: int, num_modalities: int, generator: torch.Generator | None = None
) -> Tensor:
    """The pair table ``[B, S, M]`` (see the module doc) for a scheme, an ``[M]`` draw or a table."""
    m = num_modalities
    if isinstance(pairing, Tensor) and pairing.dim() == 3:
        if pairing.shape != (batch, stages, m) or pairing.dtype != torch.long:
            raise ValueError(
                f"pair table must be a LongTensor [{batch}, {stages}, {m}], got {pairing.dtype} {tuple(pairing.shape)}"
            )
        _check_range(pairing, m)
        return pairing
    if isinstance(pairing, str) and pairing == "random_each":
        return torch.randint(0, m, (batch, stages, m), generator=generator)
    return draw_pairing(pairing, m, generator).expand(batch, stages, m)


def pair_indices(table: Tensor, stage: int, slot_present: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Flat ``(sample, student slot, teacher modality)`` indices of stage ``stage``'s pairs that count.

    ``slot_present`` (bool ``[M]``): slots that hold encoded features; pairs landing on other slots
    (dropped modalities under ``drop`` fusion, which hold constant zeros) are left out.
    """
    b, _, m = table.shape
    students = table[:, stage]  # [B, M]
    samples = torch.arange(b, device=table.device)[:, None].expand(b, m)
    teachers = torch.arange(m, device=table.device)[None].expand(b, m)
    keep = torch.ones_like(students, dtype=torch.bool)
    if slot_present is not None:
        keep = slot_present.to(table.device)[students]
    return samples[keep], students[keep], teachers[keep]


def stage_pair_indices(
    table: Tensor, slot_present: Tensor | None, device: torch.device
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``pair_indices`` of every stage, worked out on the CPU and sent to ``device``.

    Why: the kept pairs have a data-dependent count, so selecting them on a GPU would wait for the
    device once per stage and loss; on the CPU it costs one copy of ``slot_present`` per call.
    """
    table = table.cpu()
    present = None if slot_present is None else slot_present.cpu()
    return [
        tuple(t.to(device, non_blocking=True) for t in pair_indices(table, j, present))  # type: ignore[misc]
        for j in range(table.shape[1])
    ]


def _check_range(pairing: Tensor, m: int) -> None:
    if bool(((pairing < 0) | (pairing >= m)).any()):
        raise ValueError(f"pairing indices must lie in [0, {m})")
