"""Methods x protocols from evaluation records, with 95 % intervals and deltas to a baseline.

A cell is the protocol's headline number (``full`` for the ``full`` card, else ``avg``): over seeds
(mean, t interval) when several runs of a method exist, else over images (bootstrap of the
per-image counts saved beside the record). With a baseline, each cell also shows the difference;
it is marked significant (``*``) when its paired interval excludes 0: the same images resampled for
both (single runs), or the per-seed differences (runs with matching seeds). Records measured under
different splits, resolutions, mIoU conventions, or on generated vs real data are not compared
unless forced, and a forced table says so. What may be pooled as seeds (one evaluation once, one
training per method, distinct seeds): :mod:`rsbench.leaderboard.rules`. Every record's per-image
counts are read and checked against it (``rsbench.results.check_per_image``) before any statistic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsbench.errors import ConfigError
from rsbench.leaderboard.rules import check_pooling, drop_duplicates, duplicates_note, seed_of
from rsbench.leaderboard.stats import bootstrap_interval, paired_difference_runs, seed_interval
from rsbench.results import Counts, find_records, read_per_image

COMPARABLE = ("split", "resolution", "convention", "synthetic")


@dataclass
class Cell:
    value: float
    low: float
    high: float
    runs: int
    delta: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    records: list[Path] = field(default_factory=list)

    @property
    def significant(self) -> bool:
        return self.delta_low is not None and (self.delta_low > 0 or self.delta_high < 0)


def _filter(found, dataset, protocols, methods):
    keep = []
    for path, rec in found:
        if dataset and rec["dataset"] != dataset:
            continue
        if protocols and rec["protocol"] not in protocols:
            continue
        if methods and rec["method"] not in methods:
            continue
        keep.append((path, rec))
    return keep


def check_comparable(found: Sequence[tuple[Path, dict]], force: bool) -> str | None:
    """None when all records share split, resolution, convention and real/generated data; else the reason."""
    for key in ("dataset", *COMPARABLE):
        values = sorted({str(r[key]) for _, r in found})
        if len(values) > 1:
            reason = f"records differ in {key}: {', '.join(values)}"
            if not force:
                raise ConfigError(f"{reason}; filter them (--dataset/--protocol/--method) or pass --force")
            return reason
    return None


def compare(paths: Iterable[str | Path], *, dataset: str | None = None, protocols: Sequence[str] = (),
            methods: Sequence[str] = (), baseline: str | None = None, force: bool = False, n_boot: int = 1000,
            seed: int = 0, relative_to: Path | None = None) -> dict[str, Any]:
    """The comparison as data: ``{"methods", "protocols", "cells": {(method, protocol): Cell}, "note", "dataset",
    "duplicates": [(dropped, kept)], "duplicates_note"}``.

    ``note``: what ``force`` overrode (None when nothing was forced); ``duplicates_note``: one line saying how
    many repeated evaluations were counted once (paths shown relative to ``relative_to`` when given).
    """
    found = _filter(find_records(paths), dataset, protocols, methods)
    if not found:
        raise ConfigError("no records match (check the paths and the --dataset/--protocol/--method filters)")
    forced = [r for r in [check_comparable(found, force)] if r is not None]
    found, dropped = drop_duplicates(found)
    forced += check_pooling(found, force)
    counts = {path: read_per_image(path, rec) for path, rec in found if rec.get("per_image")}  # before any statistic
    groups: dict[tuple[str, str], list[tuple[Path, dict]]] = {}
    for path, rec in found:
        groups.setdefault((rec["method"], rec["protocol"]), []).append((path, rec))
    if baseline is not None and baseline not in {m for m, _ in groups}:
        raise ConfigError(f"baseline {baseline!r} has no records here (methods: {sorted({m for m, _ in groups})})")
    cells = {key: _cell(runs, counts, n_boot, seed) for key, runs in groups.items()}
    if baseline is not None:
        for (method, protocol), cell in cells.items():
            base = groups.get((baseline, protocol))
            if base is not None and method != baseline:
                _delta(cell, groups[method, protocol], base, counts, n_boot, seed)
    method_names = sorted({m for m, _ in groups}, key=lambda m: (m != baseline, m))
    from rsbench.protocols.card import ORDER

    protocol_names = sorted({p for _, p in groups}, key=lambda p: (ORDER.index(p) if p in ORDER else len(ORDER), p))
    datasets = {rec["dataset"] for _, rec in found}
    note = None
    if forced:
        note = forced[0] + (f"; and {len(forced) - 1} more" if len(forced) > 1 else "")
    return {"methods": method_names, "protocols": protocol_names, "cells": cells, "note": note,
            "dataset": datasets.pop() if len(datasets) == 1 else "mixed", "duplicates": dropped,
            "duplicates_note": duplicates_note(dropped, relative_to)}


def _metric(rec: dict) -> str:
    kind = (rec.get("protocol_card") or {}).get("kind")
    return "full" if kind == "full" or rec["protocol"] == "full" else "avg"


def _summary_fn(rec: dict):
    """The record's headline as a function of per-condition mIoUs (as ``rsbench.protocols.summary`` makes it)."""
    kind = (rec.get("protocol_card") or {}).get("kind")
    if _metric(rec) == "full":
        return lambda m: m[next(iter(m))]
    if kind in ("noise", "corruptions"):  # the clean "full" condition is the reference, not averaged
        return lambda m: sum(v for k, v in m.items() if k != "full") / (len(m) - 1)
    return lambda m: sum(m.values()) / len(m)


def _cell(runs: list[tuple[Path, dict]], counts: dict[Path, Counts], n_boot: int, seed: int) -> Cell:
    metric = _metric(runs[0][1])
    if len(runs) > 1:
        value, lo, hi = seed_interval([r["summary"][metric] for _, r in runs])
    else:
        path, rec = runs[0]
        if rec.get("per_image"):
            value, lo, hi = bootstrap_interval(counts[path], _summary_fn(rec), rec["convention"], n_boot, seed)
            value = rec["summary"][metric]
        else:
            value, lo, hi = rec["summary"][metric], float("nan"), float("nan")
    return Cell(value, lo, hi, len(runs), records=[p for p, _ in runs])


def _delta(cell: Cell, runs: list[tuple[Path, dict]], base: list[tuple[Path, dict]], counts: dict[Path, Counts],
           n_boot: int, seed: int) -> None:
    """Difference to the baseline; its interval from a paired bootstrap (same images, matching seeds)."""
    metric = _metric(runs[0][1])
    cell.delta = cell.value - sum(r["summary"][metric] for _, r in base) / len(base)
    by_seed = {seed_of(r): p for p, r in base if r.get("per_image")}
    pairs = [(p, by_seed[seed_of(r)]) for p, r in runs if r.get("per_image") and seed_of(r) in by_seed]
    if len(runs) == 1 and len(base) == 1 and not pairs and runs[0][1].get("per_image") and base[0][1].get("per_image"):
        pairs = [(runs[0][0], base[0][0])]  # one run each (e.g. no seed recorded): pair them
    if not pairs:
        return
    try:
        _, cell.delta_low, cell.delta_high = paired_difference_runs(
            [counts[p] for p, _ in pairs], [counts[q] for _, q in pairs],
            _summary_fn(runs[0][1]), runs[0][1]["convention"], n_boot, seed)
    except ValueError:
        cell.delta_low = cell.delta_high = None


def render(result: dict[str, Any], fmt: str = "md") -> str:
    """``md``, ``csv`` or ``json`` text of a comparison (the terminal table is built in the CLI)."""
    methods, protocols, cells = result["methods"], result["protocols"], result["cells"]
    if fmt == "json":
        rows = [{"method": m, "protocol": p, "value": c.value, "low": c.low, "high": c.high, "runs": c.runs,
                 "delta": c.delta, "delta_low": c.delta_low, "delta_high": c.delta_high, "significant": c.significant}
                for (m, p), c in sorted(cells.items())]
        return json.dumps({"dataset": result["dataset"], "note": result["note"],
                           "duplicates": [{"dropped": str(d), "kept": str(k)} for d, k in result.get("duplicates", [])],
                           "rows": rows}, indent=2)
    if fmt == "csv":
        lines = ["method,protocol,value,low,high,runs,delta,delta_low,delta_high,significant"]
        for (m, p), c in sorted(cells.items()):
            lines.append(",".join(str(x) for x in (m, p, f"{c.value:.4f}", f"{c.low:.4f}", f"{c.high:.4f}", c.runs,
                                                   "" if c.delta is None else f"{c.delta:.4f}",
                                                   "" if c.delta_low is None else f"{c.delta_low:.4f}",
                                                   "" if c.delta_high is None else f"{c.delta_high:.4f}",
                                                   c.significant)))
        return "\n".join(lines)
    if fmt != "md":
        raise ConfigError(f"unknown format {fmt!r} (md, csv, json, or the default table)")
    best = {p: max((cells[m, p].value for m in methods if (m, p) in cells), default=None) for p in protocols}
    head = "| method | " + " | ".join(protocols) + " |"
    notes = [n for n in (result["note"], result.get("duplicates_note")) if n]
    lines = [f"> {n}" for n in notes] + [head, "|---|" + "---:|" * len(protocols)]
    for m in methods:
        out = []
        for p in protocols:
            c = cells.get((m, p))
            out.append("" if c is None else format_cell(c, bold=c.value == best[p], md=True))
        lines.append(f"| {m} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def format_cell(c: Cell, bold: bool = False, md: bool = False) -> str:
    text = f"{c.value:.2f}"
    if c.low == c.low:  # not NaN
        text += f" [{c.low:.2f}, {c.high:.2f}]"
    if c.runs > 1:
        text += f" (n={c.runs})"
    if c.delta is not None:
        text += f" {c.delta:+.2f}{'*' if c.significant else ''}"
    if bold:
        text = f"**{text}**" if md else f"[bold]{text}[/bold]"
    return text
