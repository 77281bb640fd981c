"""A protocol card as a list of conditions: which modalities are present, which input changes apply.

Condition keys are what records and tables show. For subset protocols (``subsets``, ``rmm``) the
key names the intact modalities in the model's order (``rgb+depth``), so EMM and RMM tables line
up; ``noise`` has ``full`` (clean) and ``noisy``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from rsbench.protocols.card import ProtocolCard

EVENT_MODALITIES = ("event",)
"""Modalities that get no Gaussian noise under NM (event frames are sparse counts, METHOD.md)."""


@dataclass(frozen=True)
class Change:
    """An input change of one modality: ``rmm``, ``noise`` or a corruption ``name@severity``."""

    kind: str
    modality: str


@dataclass(frozen=True)
class Condition:
    key: str
    present: tuple[str, ...]
    """Modalities fed as they are (or changed); the others are filled as the card says."""
    changes: tuple[Change, ...] = ()
    intact: tuple[str, ...] = ()
    """Modalities untouched by missing-ness (subset protocols: the subset; used by the summaries)."""


def modality_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """All non-empty subsets, largest first, each in the model's modality order."""
    out = []
    for k in range(len(modalities), 0, -1):
        out.extend(itertools.combinations(modalities, k))
    return out


def subset_key(subset: Sequence[str]) -> str:
    return "+".join(subset)


def conditions(card: ProtocolCard, modalities: Sequence[str]) -> list[Condition]:
    names = tuple(modalities)
    if card.kind == "full":
        return [Condition(subset_key(names), names, intact=names)]
    if card.kind == "subsets":
        return [Condition(subset_key(s), s, intact=s) for s in modality_subsets(names)]
    if card.kind == "rmm":
        return [
            Condition(subset_key(s), names, tuple(Change("rmm", m) for m in names if m not in s), intact=s)
            for s in modality_subsets(names)
        ]
    if card.kind == "noise":
        return [Condition("full", names, intact=names),
                Condition("noisy", names, tuple(Change("noise", m) for m in names), intact=())]
    if card.kind == "corruptions":
        from rsbench.corruptions import corruptions_for

        out = [Condition("full", names, intact=names)]
        for m in names:
            for c in corruptions_for(m):
                if card.corruptions and c not in card.corruptions:
                    continue
                for s in card.severities:
                    out.append(Condition(f"{m}:{c}@{s}", names, (Change(f"{c}@{s}", m),),
                                         intact=tuple(n for n in names if n != m)))
        return out
    raise ValueError(f"unknown protocol kind {card.kind!r}")
