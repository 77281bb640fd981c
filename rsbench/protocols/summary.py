"""Summaries of a protocol's per-condition mIoU: the same keys for every protocol.

``full``, ``avg``, ``worst`` and ``relative`` (avg / full) always; for subset protocols (EMM,
EMM-drop, RMM) also ``e0.2``/``e0.1``/``e0.05`` (mIoU-E(p), METHOD.md section 5) and
``importance/<modality>``: the mean drop when that modality is absent, over every subset S that
holds it with another modality, of mIoU(S) - mIoU(S without it).
"""

from __future__ import annotations

from collections.abc import Sequence

from rsbench.protocols.conditions import Condition, subset_key

E_PROBS = (0.2, 0.1, 0.05)


def expected_miou(per_subset: dict[str, float], modalities: Sequence[str], p: float) -> float:
    """mIoU-E(p): subsets weighted by the chance p^|missing| (1-p)^|present| of that failure pattern."""
    m = len(modalities)
    num = den = 0.0
    for key, miou in per_subset.items():
        missing = m - len(key.split("+"))
        w = p**missing * (1 - p) ** (m - missing)
        num, den = num + w * miou, den + w
    return num / den


def importance(per_subset: dict[str, float], modalities: Sequence[str]) -> dict[str, float]:
    """Per modality: mean of mIoU(S) - mIoU(S minus it) over the subsets S that hold it and another one."""
    out = {}
    for m in modalities:
        drops = []
        for key, miou in per_subset.items():
            names = key.split("+")
            if m in names and len(names) > 1:
                without = subset_key([n for n in names if n != m])
                if without in per_subset:
                    drops.append(miou - per_subset[without])
        if drops:
            out[f"importance/{m}"] = sum(drops) / len(drops)
    return out


def summarize(per_subset: dict[str, float], modalities: Sequence[str]) -> dict[str, float]:
    """Summary of a subset protocol (keys: subset keys in the model's modality order)."""
    full = per_subset[subset_key(modalities)]
    avg = sum(per_subset.values()) / len(per_subset)
    out = {"full": full, "avg": avg, "worst": min(per_subset.values()),
           "relative": avg / full if full else float("nan")}
    if len(per_subset) > 1:
        out.update({f"e{p:g}": expected_miou(per_subset, modalities, p) for p in E_PROBS})
        out.update(importance(per_subset, modalities))
    return out


def summarize_conditions(kind: str, mious: dict[str, float], conds: Sequence[Condition],
                         modalities: Sequence[str]) -> dict[str, float]:
    if kind in ("full", "subsets", "rmm"):
        return summarize({c.key: mious[c.key] for c in conds}, modalities)
    clean = mious["full"]
    changed = [mious[c.key] for c in conds if c.changes]
    avg = sum(changed) / len(changed)
    out = {"full": clean, "avg": avg, "worst": min(changed), "relative": avg / clean if clean else float("nan")}
    if kind == "corruptions":  # importance: the mean drop when that modality is corrupted
        for m in modalities:
            mine = [mious[c.key] for c in conds if c.changes and c.changes[0].modality == m]
            if mine:
                out[f"importance/{m}"] = clean - sum(mine) / len(mine)
    return out
