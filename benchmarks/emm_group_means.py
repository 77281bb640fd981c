"""EMM group means of a record: the mean mIoU over the subsets with 0, 1, 2, ... modalities missing.

Usage: ``python benchmarks/emm_group_means.py RECORD.json`` (an ``emm`` record, e.g. written by ``rsbench eval
--protocol emm``; any subset record with every non-empty subset works). Prints each group's mean beside the
targets below, then mIoU-Avg and mIoU-E(p) recomputed from the group means beside the published values and
the record's own summary. The targets are for 4 modalities; with another count only the figures are printed.
mIoU-E(p) weighs a subset with k of M modalities missing by p^k (1-p)^(M-k), over the non-empty subsets
(``rsbench.protocols.summary.expected_miou``), so Avg and E(p) are linear in the group means.
"""

from __future__ import annotations

import sys
from math import comb
from pathlib import Path

# CMNeXt-B2 RGB-D-E-L on DELIVER val, zero-filled absent modalities. Published (Liao et al., multi-modal
# segmentation robustness benchmark, CVPR 2025 workshop, arXiv 2503.18445, DELIVER val robustness table):
# EMM Avg and E(p); the group means (missing 0..3) are solved from those four, each being linear in them
# (leaderboards/reported.yaml, entry CMNeXt/deliver, emm:missing-K).
TARGETS = {
    "groups": {0: 66.33, 1: 51.65, 2: 36.10, 3: 19.75},
    "published": {"avg": 37.90, "e0.2": 54.46, "e0.1": 60.41, "e0.05": 63.38},
}
E_PROBS = (0.2, 0.1, 0.05)


def group_means(conditions: dict[str, dict], modalities: list[str]) -> dict[int, float]:
    """Mean mIoU per number of missing modalities; every non-empty subset must be in ``conditions``."""
    m = len(modalities)
    groups: dict[int, list[float]] = {k: [] for k in range(m)}
    for key, scores in conditions.items():
        names = key.split("+")
        if not set(names) <= set(modalities):
            raise SystemExit(f"condition {key!r} is not a subset of {modalities}: not a subset record")
        groups[m - len(names)].append(float(scores["miou"]))
    for k, values in groups.items():
        if len(values) != comb(m, k):
            raise SystemExit(f"{len(values)} subsets with {k} missing, expected {comb(m, k)}: "
                             "not a complete EMM record")
    return {k: sum(v) / len(v) for k, v in groups.items()}


def from_groups(groups: dict[int, float], m: int) -> dict[str, float]:
    """mIoU-Avg and mIoU-E(p) from the group means (``groups[k]``: k of ``m`` missing)."""
    out = {"avg": sum(comb(m, k) * g for k, g in groups.items()) / (2**m - 1)}
    for p in E_PROBS:
        w = {k: comb(m, k) * p**k * (1 - p) ** (m - k) for k in groups}
        out[f"e{p:g}"] = sum(w[k] * g for k, g in groups.items()) / sum(w.values())
    return out


def main(path: str) -> None:
    from rsbench.results import read_record

    record = read_record(Path(path))
    mods = list(record["modalities"])
    m = len(mods)
    groups = group_means(record["conditions"], mods)
    targets = TARGETS if m == 4 else None
    print(f"{path}: {record.get('method')} on {record.get('dataset')}/{record.get('split')}, protocol "
          f"{record.get('protocol')}, fill {record.get('fill')}, convention {record.get('convention')}, "
          f"resolution {record.get('resolution')}, {len(record['conditions'])} subsets of {', '.join(mods)}")
    if targets:
        print("targets: CMNeXt-B2 RGB-D-E-L on DELIVER val, Liao et al. 2025 (arXiv 2503.18445)")
    print(f"{'missing':>8} {'subsets':>8} {'mean mIoU':>10} {'target':>8} {'diff':>7}")
    for k, g in groups.items():
        line = f"{k:>8} {comb(m, k):>8} {g:>10.2f}"
        if targets:
            t = targets["groups"][k]
            line += f" {t:>8.2f} {g - t:>+7.2f}"
        print(line)
    ours, summary = from_groups(groups, m), record["summary"]
    print(f"{'':>8} {'from groups':>12} {'record':>8} {'published':>10} {'diff':>7}")
    for key, v in ours.items():
        line = f"{key:>8} {v:>12.2f} {summary.get(key, float('nan')):>8.2f}"
        if targets:
            t = targets["published"][key]
            line += f" {t:>10.2f} {v - t:>+7.2f}"
        print(line)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python benchmarks/emm_group_means.py RECORD.json")
    main(sys.argv[1])
