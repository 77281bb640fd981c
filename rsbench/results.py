"""Result records: one JSON file per evaluation, written atomically and never rewritten.

Schema 2. A record holds, as numbers, each condition's metrics and the protocol's summaries; the
identity of what was measured (method and its card digest, protocol card name and digest,
checkpoint sha256, dataset, split, data fingerprint, generated or real, resolution, mIoU
convention, fill); and provenance (rsbench version, git commit, torch, Python, device, world size,
seed, wall time, date). Per-image intersections and unions per class and condition lie beside it
in ``<record>.npz``, so statistics over images can be recomputed without the model.
``validate_record`` names the file and the field of a malformed record; ``read_record`` upgrades
schema 1 (``subsets`` -> ``conditions``, identity fields from its provenance).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import uuid
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsbench import __version__
from rsbench.distributed import world_size
from rsbench.errors import ConfigError
from rsbench.io import publish, write_text

SCHEMA_VERSION = 2
NUMBER = (int, float)
_REQUIRED: dict[str, tuple[type, ...]] = {
    "schema": (int,), "kind": (str,), "method": (str,), "method_digest": (str, type(None)), "protocol": (str,),
    "protocol_digest": (str, type(None)), "checkpoint_sha256": (str, type(None)), "dataset": (str,),
    "split": (str,), "data_fingerprint": (str, type(None)), "synthetic": (bool,), "resolution": (int, type(None)),
    "convention": (str,), "fill": (str,), "modalities": (list,), "summary": (dict,), "conditions": (dict,),
    "num_samples": (int,), "provenance": (dict,), "per_image": (str, type(None)),
}
_PROVENANCE = ("rsbench_version", "torch_version", "device", "world_size", "wall_time_s", "created")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str | None:
    """Commit of the rsbench checkout, when running from one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(device: str, wall_time_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "rsbench_version": __version__,
        "git_commit": git_commit(),
        "torch_version": str(torch.__version__),
        "python": platform.python_version(),
        "device": device,
        "threads": torch.get_num_threads(),  # CPU float sums depend on it (README: threads)
        "world_size": world_size(),
        "wall_time_s": round(wall_time_s, 3),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def make_record(result: Any, *, method: str, dataset: str, split: str, prov: dict[str, Any],
                card: dict[str, Any] | None = None, method_digest: str | None = None,
                checkpoint_sha256: str | None = None, data_fingerprint: str | None = None,
                resolution: int | None = None) -> dict[str, Any]:
    """A JSON-safe schema-2 evaluation record from an :class:`rsbench.evaluation.EvalResult`."""
    body = asdict(result)
    extra = body.pop("extra", {}) or {}
    return {
        "schema": SCHEMA_VERSION,
        "kind": "evaluation",
        "method": method,
        "method_digest": method_digest,
        "protocol": body.pop("protocol"),
        "protocol_digest": extra.get("protocol_digest"),
        "checkpoint_sha256": checkpoint_sha256,
        "dataset": dataset,
        "split": split,
        "data_fingerprint": data_fingerprint,
        "synthetic": dataset.endswith("-synth"),
        "resolution": resolution,
        "convention": body.pop("convention"),
        "fill": body.pop("fill"),
        "modalities": body.pop("modalities"),
        "summary": body.pop("summary"),
        "conditions": body.pop("subsets"),
        "num_samples": body.pop("num_samples"),
        "per_image": None,
        "provenance": {"world_size": 1, **prov, "eval_time_s": round(body.pop("wall_time_s"), 3)},
        "card": card,
        "protocol_card": extra.get("protocol_card"),
    }


class NotFiniteError(ConfigError, ValueError):
    """A record's number is NaN or infinite: a ``ValueError`` too, as ``json.dumps(allow_nan=False)`` raised
    for it before the validator looked at values."""


def _finite(value: Any) -> bool:
    return isinstance(value, NUMBER) and not isinstance(value, bool) and math.isfinite(value)


def _count(node: dict, key: str, field: str, where: str | Path, minimum: int, optional: bool = False) -> None:
    """``node[key]`` (the record's field ``field``), when present, is an integer of at least ``minimum``."""
    if key not in node or (optional and node[key] is None):
        return
    value = node[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}: field {field!r} has type {type(value).__name__}")
    if value < minimum:
        raise ConfigError(f"{where}: field {field!r} is {value}; a count must be at least {minimum}")


def validate_record(record: Any, where: str | Path = "record") -> dict[str, Any]:
    """Check a record's fields, types and values; the error names the file and the field.

    Beyond types: every summary value and every number of a condition is finite (JSON readers accept
    ``NaN`` and ``Infinity``; rsbench never writes them), mIoU and per-class IoU lie in 0..100, counts
    (``num_samples``, ``num_classes``, ``resolution``, ``provenance.world_size``, ``threads``,
    ``trained_iters``, ``seed``) are not negative (``num_samples``, ``num_classes`` and ``world_size`` at least 1),
    and each condition's per-class list has one entry per class (its ``num_classes``; without one, all
    conditions' lists have the same length).
    """
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: a record must be a JSON object")
    for key, types in _REQUIRED.items():
        if key not in record:
            raise ConfigError(f"{where}: field {key!r} is missing")
        value = record[key]
        if not isinstance(value, types) or (type(value) is bool and bool not in types):
            raise ConfigError(f"{where}: field {key!r} has type {type(value).__name__}")
    if record["schema"] != SCHEMA_VERSION:
        raise ConfigError(f"{where}: field 'schema' is {record['schema']}, expected {SCHEMA_VERSION}")
    for key, value in record["summary"].items():
        if not isinstance(value, NUMBER) or isinstance(value, bool):
            raise ConfigError(f"{where}: field 'summary.{key}' is not a number")
        if not math.isfinite(value):
            raise NotFiniteError(f"{where}: field 'summary.{key}' is {value}, not a finite number")
    _count(record, "num_samples", "num_samples", where, 1)
    _count(record, "resolution", "resolution", where, 1, optional=True)
    if not record["conditions"]:
        raise ConfigError(f"{where}: field 'conditions' is empty")
    lengths: dict[int, str] = {}
    for key, scores in record["conditions"].items():
        if not isinstance(scores, dict) or not isinstance(scores.get("miou"), NUMBER) or isinstance(
                scores.get("miou"), bool):
            raise ConfigError(f"{where}: field 'conditions.{key}.miou' is not a number")
        per_class = scores.get("per_class_iou")
        if not isinstance(per_class, list) or not all(
                v is None or (isinstance(v, NUMBER) and not isinstance(v, bool)) for v in per_class):
            raise ConfigError(f"{where}: field 'conditions.{key}.per_class_iou' is not a list of numbers")
        for name, value in scores.items():
            if isinstance(value, NUMBER) and not isinstance(value, bool) and not math.isfinite(value):
                raise NotFiniteError(f"{where}: field 'conditions.{key}.{name}' is {value}, not a finite number")
        for i, value in enumerate(per_class):
            if value is not None and not (math.isfinite(value) and 0 <= value <= 100):
                raise ConfigError(f"{where}: field 'conditions.{key}.per_class_iou[{i}]' is {value}, not an IoU "
                                  "in percent (0..100)")
        if not 0 <= scores["miou"] <= 100:
            raise ConfigError(f"{where}: field 'conditions.{key}.miou' is {scores['miou']}, not an mIoU in percent "
                              "(0..100)")
        _count(scores, "num_classes", f"conditions.{key}.num_classes", where, 1)
        if "num_classes" in scores:
            if len(per_class) != scores["num_classes"]:
                raise ConfigError(f"{where}: field 'conditions.{key}.per_class_iou' has {len(per_class)} entries "
                                  f"for {scores['num_classes']} classes")
        lengths.setdefault(len(per_class), key)
    if len(lengths) > 1:
        (n_a, a), (n_b, b) = sorted(lengths.items())[:2]
        raise ConfigError(f"{where}: field 'conditions.{a}.per_class_iou' has {n_a} entries, "
                          f"'conditions.{b}.per_class_iou' {n_b}: one record has one class count")
    for key in _PROVENANCE:
        if key not in record["provenance"]:
            raise ConfigError(f"{where}: field 'provenance.{key}' is missing")
    prov = record["provenance"]
    _count(prov, "world_size", "provenance.world_size", where, 1)
    _count(prov, "threads", "provenance.threads", where, 1, optional=True)
    _count(prov, "trained_iters", "provenance.trained_iters", where, 0, optional=True)
    _count(prov, "seed", "provenance.seed", where, 0, optional=True)
    wall = prov["wall_time_s"]
    if not _finite(wall) or wall < 0:
        raise ConfigError(f"{where}: field 'provenance.wall_time_s' is {wall!r}, not a time in seconds")
    return record


def write_record(record: dict[str, Any], path: str | Path, per_image: dict[str, Any] | None = None) -> Path:
    """Write ``record`` (and its per-image counts, ``<path>.npz``) atomically; never overwrite a record."""
    path = Path(path).expanduser()
    if path.exists():
        raise ConfigError(f"record {path} exists; records are never rewritten (choose another --out)")
    record = dict(record)
    if per_image is not None:
        record["per_image"] = path.with_suffix(".npz").name
    validate_record(record, path)  # before anything is written: a bad record leaves no .npz behind
    if per_image is not None:
        _write_npz(path.with_suffix(".npz"), per_image)
    write_text(path, json.dumps(record, indent=2, sort_keys=False, allow_nan=False) + "\n")
    return path


def _write_npz(path: Path, per_image: dict[str, Any]) -> None:
    keys = [k for k in per_image if k != "sample_index"]
    arrays = {"sample_index": np.asarray(per_image["sample_index"], dtype=np.int64),
              "condition_keys": np.asarray(keys)}
    for i, key in enumerate(keys):
        inter, union = per_image[key]
        arrays[f"intersection_{i}"] = np.asarray(inter, dtype=np.int32)
        arrays[f"union_{i}"] = np.asarray(union, dtype=np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


Counts = dict[str, tuple[np.ndarray, np.ndarray]]


def read_per_image(record_path: str | Path, record: dict[str, Any] | None = None) -> Counts:
    """Per condition: the ``[N, K]`` intersection and union counts saved beside a record, checked against it.

    ``record``: the record already read from ``record_path`` (else it is read). The counts must be the
    record's own (:func:`check_per_image`): a record copied beside another record's ``.npz`` is refused.
    """
    record_path = Path(record_path)
    record = read_record(record_path) if record is None else record
    if not record["per_image"]:
        raise ConfigError(f"{record_path}: no per-image counts were saved with this record")
    npz = per_image_path(record_path, record)
    try:
        with np.load(npz, allow_pickle=False) as z:
            keys = [str(k) for k in z["condition_keys"]]
            samples = z["sample_index"]
            counts = {k: (z[f"intersection_{i}"], z[f"union_{i}"]) for i, k in enumerate(keys)}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        why = "holds Python objects, refused: loading them could run code" if "allow_pickle" in str(exc) else (
            type(exc).__name__)
        raise ConfigError(f"{npz}: unreadable per-image counts of {record_path.name} ({why})") from None
    check_per_image(record_path, record, counts, samples)
    return counts


TOTALS_TOLERANCE = 1e-6
"""Percentage points: the record's IoUs are float64 divisions of the same integer totals."""


def check_per_image(record_path: str | Path, record: dict[str, Any], counts: Counts, sample_index: np.ndarray) -> None:
    """The per-image counts belong to the record: its conditions, its sample count, its class count, and totals
    that give its per-class IoUs and each condition's mIoU. The error names the record and what differs."""
    where = f"{record_path}: its per-image counts {record['per_image']}"
    if len(keys := list(counts)) != len(set(keys)) or set(keys) != set(record["conditions"]):
        raise ConfigError(f"{where} hold conditions {', '.join(keys) or 'none'}; the record has "
                          f"{', '.join(record['conditions'])}")
    n = int(np.asarray(sample_index).shape[0])
    if n != record["num_samples"]:
        raise ConfigError(f"{where} hold {n} samples; the record has {record['num_samples']}")
    for key, (inter, union) in counts.items():
        scores = record["conditions"][key]
        per_class = scores["per_class_iou"]
        if inter.ndim != 2 or inter.shape != union.shape or inter.shape[0] != n:
            raise ConfigError(f"{where}: condition {key} has intersection {inter.shape} and union {union.shape}, "
                              f"expected [{n}, classes] each")
        if inter.shape[1] != len(per_class):
            raise ConfigError(f"{where}: condition {key} counts {inter.shape[1]} classes; the record has "
                              f"{len(per_class)}")
        if (inter < 0).any() or (union < inter).any():
            raise ConfigError(f"{where}: condition {key} has negative counts or an intersection above its union")
        i_tot, u_tot = inter.sum(0, dtype=np.float64), union.sum(0, dtype=np.float64)
        for c, value in enumerate(per_class):
            total = None if u_tot[c] == 0 else 100 * i_tot[c] / u_tot[c]
            if (total is None) != (value is None) or (total is not None and abs(total - value) > TOTALS_TOLERANCE):
                shown = "no pixels" if total is None else f"IoU {total:.4f}"
                raise ConfigError(f"{where} are not the record's: condition {key}, class {c}: their totals give "
                                  f"{shown}, the record {'no IoU' if value is None else f'{value:.4f}'}")
        iou = np.divide(i_tot, u_tot, out=np.zeros_like(i_tot), where=u_tot > 0)
        if scores.get("convention", record["convention"]) == "nanmean":  # as rsbench.metrics: absent classes
            total = float(100 * iou[u_tot > 0].mean()) if (u_tot > 0).any() else float("nan")  # dropped, or 0
        else:
            total = float(100 * iou.mean())
        if not abs(total - scores["miou"]) <= TOTALS_TOLERANCE:
            raise ConfigError(f"{where} are not the record's: condition {key}: their totals give mIoU {total:.4f}, "
                              f"the record {scores['miou']:.4f}")


def per_image_path(record_path: str | Path, record: dict[str, Any]) -> Path:
    """The ``.npz`` partner a record names; a named partner that is absent is an error."""
    npz = Path(record_path).parent / record["per_image"]
    if not npz.is_file():
        raise ConfigError(f"{record_path}: its per-image counts {npz} are missing (copy the .npz with the record)")
    return npz


def upgrade_v1(record: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 record in schema 2 (identity fields moved out of its provenance)."""
    prov = dict(record.get("provenance") or {})
    dataset = str(record.get("dataset", ""))
    out = {
        "schema": SCHEMA_VERSION, "kind": record.get("kind", "evaluation"), "method": record.get("method"),
        "method_digest": prov.get("card_digest"),
        "protocol": "emm" if record.get("protocol") == "all-subsets" else record.get("protocol"),
        "protocol_digest": None, "checkpoint_sha256": prov.get("checkpoint_sha256"), "dataset": dataset,
        "split": record.get("split"), "data_fingerprint": prov.get("data_fingerprint"),
        "synthetic": dataset.endswith("-synth"), "resolution": (record.get("card") or {}).get("eval_size"),
        "convention": record.get("convention"), "fill": record.get("fill"), "modalities": record.get("modalities"),
        "summary": record.get("summary"), "conditions": record.get("subsets"),
        "num_samples": record.get("num_samples"), "per_image": None,
        "provenance": {"world_size": 1, **prov}, "card": record.get("card"), "protocol_card": None,
    }
    return out


def read_record(path: str | Path) -> dict[str, Any]:
    """Read and validate a record (schema 1 is upgraded)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except UnicodeDecodeError:
        kind = "a torch checkpoint" if zipfile.is_zipfile(path) else "a binary file"
        raise ConfigError(f"unreadable record {path}: {kind}, not a JSON record") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable record {path}: {exc}") from None
    if isinstance(record, dict) and record.get("schema") == 1:
        record = upgrade_v1(record)
    return validate_record(record, path)


def default_record_name(protocol: str, split: str) -> str:
    """A new, unique file name: UTC time stamp plus a random suffix (two runs in one second differ)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{protocol}-{split}-{stamp}-{uuid.uuid4().hex[:8]}.json"


def record_checkpoint_evaluation(result: Any, checkpoint: str | Path, ckpt: dict[str, Any], card: Any, dataset: str,
                                 split: str, device: str, out: str | Path | None = None) -> Path:
    """Write the record of evaluating a training checkpoint (default: ``<run>/records/<name>.json``)."""
    checkpoint = Path(checkpoint)
    prov = provenance(device, result.wall_time_s, seed=card.seed, profile=ckpt.get("profile", ""),
                      trained_iters=int(ckpt["iter"]))
    record = make_record(result, method=card.name, dataset=dataset, split=split, prov=prov, card=card.to_dict(),
                         method_digest=card.digest(), checkpoint_sha256=file_sha256(checkpoint),
                         data_fingerprint=ckpt["data_fingerprint"], resolution=card.eval_size)
    path = Path(out) if out is not None else checkpoint.parent / "records" / default_record_name(result.protocol, split)
    return write_record(record, path, result.extra.get("per_image"))


def record_weights_evaluation(result: Any, weights: str | Path, model: str, options: dict[str, Any], dataset: str,
                              split: str, device: str, out: str | Path | None = None) -> Path:
    """Write the record of evaluating a bare state_dict (``rsbench eval --weights``; default beside the file)."""
    weights = Path(weights)
    prov = provenance(device, result.wall_time_s, weights=str(weights), seed=None)
    record = make_record(result, method=f"weights:{weights.stem}", dataset=dataset, split=split, prov=prov,
                         card={"model": model, **options}, checkpoint_sha256=file_sha256(weights),
                         resolution=options.get("eval_size"))
    path = Path(out) if out is not None else weights.parent / "records" / default_record_name(result.protocol, split)
    return write_record(record, path, result.extra.get("per_image"))


def _meant_as_record(path: Path) -> bool:
    """Whether a JSON file met in a folder is meant as a record: an object with ``schema`` or kind ``evaluation``.

    Text that does not parse counts as one: a truncated record cannot be told from other broken JSON, and
    skipping it would silently drop a run from a comparison or a leaderboard.
    """
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True
    return isinstance(value, dict) and ("schema" in value or value.get("kind") == "evaluation")


def find_records(paths: Any) -> list[tuple[Path, dict[str, Any]]]:
    """Records from files and folders (searched recursively).

    A folder's JSON files that are not meant as records are skipped; a broken record is an error, not a skip.
    """
    out = []
    for p in map(Path, [paths] if isinstance(paths, (str, Path)) else paths):
        if p.is_dir():
            out.extend((f, read_record(f)) for f in sorted(p.rglob("*.json")) if _meant_as_record(f))
        elif p.is_file():
            out.append((p, read_record(p)))
        else:
            raise ConfigError(f"no record or folder at {p}")
    return out


def load(paths: Any) -> Any:
    """A pandas DataFrame with one row per record: identity, seed and every summary value."""
    import pandas as pd

    rows = []
    for path, rec in find_records(paths):
        row = {k: rec[k] for k in ("method", "protocol", "dataset", "split", "synthetic", "resolution", "convention",
                                   "fill", "num_samples")}
        row.update(seed=rec["provenance"].get("seed"), path=str(path), **rec["summary"])
        rows.append(row)
    return pd.DataFrame(rows)
