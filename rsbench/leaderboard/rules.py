"""Which records a comparison may pool: one evaluation counts once, and a method's runs are seeds of one training.

- **One evaluation counts once.** An evaluation is identified by what was measured: the checkpoint's sha256,
  the protocol (name and digest), the dataset, the split and the mIoU convention, plus the method name and
  seed it is filed under (a checkpoint has one seed; hand-made records may share a placeholder hash). A
  record given twice, or copied into two folders, is kept once (the first by path, so the choice does not
  depend on the order of the arguments) and the comparison says how many were dropped. A record without a
  checkpoint hash is identified by its numbers instead (an exact copy has the same ones).
- **A method's records are seeds of one training.** Each record's training is its card's digest, read as a
  card today (``rsbench.cards.card_from_dict``: earlier flat loss keys folded into the losses that use
  them, so options of a loss the method does not train with do not count) with the seed and the
  description left out, and the iterations it was trained for (``provenance.trained_iters``, else the
  card's ``iters``). A card that is not a method card (``rsbench eval --weights`` records hold the model's
  options) is hashed as it is, seed left out; a record without a card falls back to its ``method_digest``.
  Records of one method with different trainings are not pooled.
- **Seeds are distinct.** Under one protocol, two records of a method with the same seed (or both without
  one) are not pooled: they are re-trainings or re-scorings, not independent seeds.

``--force`` pools them anyway, and the comparison's note names what was forced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from rsbench.errors import ConfigError

Found = Sequence[tuple[Path, dict[str, Any]]]
FORCE_HINT = "pass --force to pool them"
NOT_TRAINING = ("seed", "description")
"""Card keys that do not change what is trained: a method's seeds differ in ``seed`` by design."""


def seed_of(rec: dict[str, Any]) -> Any:
    return rec["provenance"].get("seed")


def evaluation_key(rec: dict[str, Any]) -> tuple:
    """What was measured: equal keys are one evaluation, however many files hold it."""
    measured = rec.get("checkpoint_sha256") or "numbers:" + hashlib.sha256(
        json.dumps([rec["summary"], rec["conditions"]], sort_keys=True).encode()).hexdigest()
    return (rec["method"], json.dumps(seed_of(rec)), measured, rec["protocol"], rec.get("protocol_digest"),
            rec["dataset"], rec["split"], rec["convention"])


def drop_duplicates(found: Found) -> tuple[list[tuple[Path, dict]], list[tuple[Path, Path]]]:
    """(the records with each evaluation once, in their order; (dropped, kept) paths of the repeats)."""
    first: dict[tuple, int] = {}
    for i in sorted(range(len(found)), key=lambda i: str(found[i][0])):
        first.setdefault(evaluation_key(found[i][1]), i)
    kept = set(first.values())
    dropped = sorted((found[i][0], found[first[evaluation_key(found[i][1])]][0]) for i in range(len(found))
                     if i not in kept)
    return [found[i] for i in range(len(found)) if i in kept], dropped


def duplicates_note(dropped: list[tuple[Path, Path]], relative_to: Path | None = None) -> str | None:
    """One line: how many duplicate evaluations were dropped, and the first of them."""
    if not dropped:
        return None

    def show(p: Path) -> str:
        if relative_to is not None:
            try:
                return Path(p).relative_to(relative_to).as_posix()
            except ValueError:
                pass
        return str(p)

    (d, k), n = dropped[0], len(dropped)
    first = f"{show(d)} given twice" if Path(d) == Path(k) else f"{show(d)} repeats {show(k)}"
    more = f"; and {n - 1} more" if n > 1 else ""
    return (f"{n} duplicate evaluation{'s' if n > 1 else ''} counted once (same method, seed, checkpoint, "
            f"protocol digest, dataset, split and convention): {first}{more}")


@lru_cache(maxsize=4096)
def _card_digest(card_json: str) -> str:
    values = json.loads(card_json)
    try:
        from rsbench.cards import card_from_dict

        card = card_from_dict(values)
        return dataclasses.replace(card, seed=0, description="").digest()
    except (ConfigError, TypeError, ValueError, KeyError):  # not a method card (weights records), or a newer one
        rest = {k: v for k, v in values.items() if k not in NOT_TRAINING}
        return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]


def training(rec: dict[str, Any]) -> tuple[str | None, int | None]:
    """(card digest without seed and description, iterations trained) of the run a record scores."""
    card = rec.get("card")
    if isinstance(card, dict) and card:
        digest: str | None = _card_digest(json.dumps(card, sort_keys=True))
    else:
        digest = rec.get("method_digest")
    iters = rec["provenance"].get("trained_iters")
    if iters is None and isinstance(card, dict) and isinstance(card.get("iters"), int):
        iters = card["iters"]
    return digest, iters


def _describe(t: tuple[str | None, int | None]) -> str:
    digest, iters = t
    return (f"card digest {digest or 'unknown'}, " + (f"{iters} iterations" if iters is not None
                                                        else "iterations unknown"))


def check_pooling(found: Found, force: bool, hint: str = FORCE_HINT) -> list[str]:
    """Refuse records of one method from different trainings, or with a seed twice under one protocol.

    Returns the reasons that ``force`` overrode (empty when nothing needed forcing).
    """
    reasons: list[str] = []

    def refuse(reason: str) -> None:
        if not force:
            raise ConfigError(f"{reason}; {hint}")
        reasons.append(reason)

    by_method: dict[str, dict[tuple, Path]] = {}
    for path, rec in found:
        by_method.setdefault(rec["method"], {}).setdefault(training(rec), path)
    for method, trainings in by_method.items():
        if len(trainings) > 1:
            (ta, a), (tb, b) = list(trainings.items())[:2]
            refuse(f"records of method {method!r} come from different training: {a} ({_describe(ta)}) and {b} "
                   f"({_describe(tb)})")
    seen: dict[tuple, tuple[Path, dict]] = {}
    for path, rec in found:
        key = (rec["method"], rec["protocol"], json.dumps(seed_of(rec)))
        if key not in seen:
            seen[key] = (path, rec)
            continue
        other, orec = seen[key]
        seed = seed_of(rec)
        said = f"seed {seed}" if seed is not None else "no seed"
        refuse(f"records of method {rec['method']!r} under protocol {rec['protocol']!r} both have {said}: {other} "
               f"({_measured(orec)}) and {path} ({_measured(rec)}); seeds must be distinct")
    return reasons


def _measured(rec: dict[str, Any]) -> str:
    sha = rec.get("checkpoint_sha256")
    return f"checkpoint {sha[:8] if sha else 'unknown'}, protocol digest {rec.get('protocol_digest') or 'unknown'}"
