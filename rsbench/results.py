"""Result records: one JSON file per evaluation, written atomically and never rewritten.

A record holds the protocol's metrics as numbers plus provenance (card hash, checkpoint
sha256, seed, versions, device, wall time), so any number in a table can be traced to the
run that made it and repeated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rsbench import __version__
from rsbench.errors import ConfigError
from rsbench.io import write_text

SCHEMA_VERSION = 1


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
        "wall_time_s": round(wall_time_s, 3),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def make_record(result: Any, *, method: str, dataset: str, split: str, prov: dict[str, Any],
                card: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-safe evaluation record from an :class:`rsbench.evaluation.EvalResult`."""
    body = asdict(result)
    return {
        "schema": SCHEMA_VERSION,
        "kind": "evaluation",
        "method": method,
        "dataset": dataset,
        "split": split,
        "protocol": body.pop("protocol"),
        "fill": body.pop("fill"),
        "convention": body.pop("convention"),
        "modalities": body.pop("modalities"),
        "summary": body.pop("summary"),
        "subsets": body.pop("subsets"),
        "num_samples": body.pop("num_samples"),
        "provenance": {**prov, "eval_time_s": round(body.pop("wall_time_s"), 3)},
        "card": card,
        "protocol_card": body.pop("extra", {}).get("protocol_card"),
    }


def write_record(record: dict[str, Any], path: str | Path) -> Path:
    """Write ``record`` to ``path`` atomically; an existing record is never overwritten."""
    path = Path(path).expanduser()
    if path.exists():
        raise ConfigError(f"record {path} exists; records are never rewritten (choose another --out)")
    write_text(path, json.dumps(record, indent=2, sort_keys=False, allow_nan=False) + "\n")
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable record {path}: {exc}") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA_VERSION:
        raise ConfigError(f"{path}: not an rsbench record of schema {SCHEMA_VERSION}")
    return record


def default_record_name(protocol: str, split: str) -> str:
    """A new, unique file name: UTC time stamp plus a random suffix (two runs in one second differ)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{protocol}-{split}-{stamp}-{uuid.uuid4().hex[:8]}.json"


def record_checkpoint_evaluation(result: Any, checkpoint: str | Path, ckpt: dict[str, Any], card: Any, dataset: str,
                                 split: str, device: str, out: str | Path | None = None) -> Path:
    """Write the record of evaluating a training checkpoint (default: ``<run>/records/<name>.json``)."""
    checkpoint = Path(checkpoint)
    prov = provenance(device, result.wall_time_s, checkpoint_sha256=file_sha256(checkpoint),
                      card_digest=card.digest(), seed=card.seed, profile=ckpt.get("profile", ""),
                      trained_iters=int(ckpt["iter"]), data_fingerprint=ckpt["data_fingerprint"])
    record = make_record(result, method=card.name, dataset=dataset, split=split, prov=prov, card=card.to_dict())
    path = Path(out) if out is not None else checkpoint.parent / "records" / default_record_name(result.protocol, split)
    return write_record(record, path)


def record_weights_evaluation(result: Any, weights: str | Path, model: str, options: dict[str, Any], dataset: str,
                              split: str, device: str, out: str | Path | None = None) -> Path:
    """Write the record of evaluating a bare state_dict (``rsbench eval --weights``; default beside the file)."""
    weights = Path(weights)
    prov = provenance(device, result.wall_time_s, checkpoint_sha256=file_sha256(weights), weights=str(weights))
    record = make_record(result, method=f"weights:{weights.stem}", dataset=dataset, split=split, prov=prov,
                         card={"model": model, **options})
    path = Path(out) if out is not None else weights.parent / "records" / default_record_name(result.protocol, split)
    return write_record(record, path)
