"""The field's released checkpoints as data (RobustBench's ``model_info`` habit): ``released.yaml`` beside this.

Each entry names one file the authors host, the rsbench model that reads it, and its input spec
(modality order, loader options, evaluation size and resize, classes), so
``rsbench eval --released NAME --weights FILE`` scores it as its authors did. Nothing is downloaded:
the user gives the local file, and its sha256 is checked once an entry records one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from rsbench.errors import ConfigError

FIELDS = ("architecture", "model", "file", "dataset", "modalities", "num_classes", "eval_size", "eval_resize",
          "dataset_options", "layout", "reported", "sha256")
OPTIONAL = ("embed_dim", "notes")


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """One released file and how to score it."""

    name: str
    architecture: str
    model: str
    file: str | None
    dataset: str
    modalities: tuple[str, ...]
    num_classes: int
    eval_size: int | None
    layout: str
    reported_miou: float | None
    reported_in: str
    hosted: str
    sha256: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    """Loader options that read the data as the authors' loader does (``create_dataset(..., **options)``)."""
    embed_dim: int | None = None
    eval_resize: str = "antialias"
    notes: str = ""

    def command(self, root: str = "DIR") -> str:
        """The command that scores this file under the EMM protocol (``--released`` brings the eval size)."""
        return (f"rsbench eval --released {self.name} --weights {self.file or 'FILE'} --dataset {self.dataset} "
                f"--root {root} --protocol emm")


def _entry(name: str, raw: Any) -> ReleasedCheckpoint:
    where = f"released.yaml: {name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    missing = [k for k in FIELDS if k not in raw]
    unknown = sorted(set(raw) - set(FIELDS) - set(OPTIONAL))
    if missing or unknown:
        raise ConfigError(f"{where}: missing fields {missing}, unknown fields {unknown}")
    reported = raw["reported"] or {}
    miou = reported.get("miou")
    return ReleasedCheckpoint(
        name=name, architecture=str(raw["architecture"]), model=str(raw["model"]), file=raw["file"],
        dataset=str(raw["dataset"]), modalities=tuple(raw["modalities"]), num_classes=int(raw["num_classes"]),
        eval_size=raw["eval_size"], layout=str(raw["layout"]),
        reported_miou=None if miou is None else float(miou), reported_in=str(reported.get("reported_in", "")),
        hosted=str(reported.get("hosted", "")), sha256=raw["sha256"],
        dataset_options=dict(raw["dataset_options"] or {}),
        embed_dim=raw.get("embed_dim"), eval_resize=str(raw["eval_resize"]), notes=str(raw.get("notes") or ""),
    )


@lru_cache(maxsize=1)
def released_checkpoints() -> dict[str, ReleasedCheckpoint]:
    """Every registered released checkpoint by name (``released.yaml``, read with ``yaml.safe_load``)."""
    text = (resources.files("rsbench.models.zoo") / "released.yaml").read_text()
    raw = yaml.safe_load(text)
    return {name: _entry(name, entry) for name, entry in (raw.get("checkpoints") or {}).items()}


def released_checkpoint(name: str) -> ReleasedCheckpoint:
    known = released_checkpoints()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown released checkpoint {name!r}{hint} (`rsbench models` lists them)")
    return known[name]
