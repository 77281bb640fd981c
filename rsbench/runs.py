"""Run folders and checkpoints: save and load safely, rebuild models, decide when a run can be reused.

Kept apart from the training loop so that evaluation (``rsbench eval``, the demo, the Python API)
never imports training.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsbench.cards import MethodCard, card_from_dict, model_kwargs
from rsbench.data import SegmentationDataset
from rsbench.errors import ConfigError
from rsbench.io import atomic_write
from rsbench.models import create_model
from rsbench.models.checkpoint import torch_load_weights_only

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_ENTRIES = ("model", "card", "dataset", "modalities", "num_classes", "data_fingerprint")
"""What every rsbench checkpoint holds (a file without one of them cannot be scored or resumed)."""


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def data_fingerprint(ds: SegmentationDataset) -> str:
    """Hash of what a model was trained on: dataset name, modalities and sample ids."""
    h = hashlib.sha256(f"{ds.name}|{','.join(ds.modalities)}|".encode())
    for ref in ds.samples:
        h.update(ref.id.encode() + b"\n")
    return h.hexdigest()[:16]


def finished_run(path: Path, card: MethodCard, dataset: str, fingerprint: str) -> bool:
    """A complete checkpoint trained with exactly this card on exactly this data: safe to reuse."""
    if not path.is_file():
        return False
    ckpt = load_checkpoint(path)
    try:
        same_card = card_from_dict(ckpt["card"]) == card  # saved cards of earlier versions are converted first
    except ConfigError:
        return False
    return bool(ckpt.get("complete")) and same_card and ckpt["dataset"] == dataset and \
        ckpt["data_fingerprint"] == fingerprint


PREVIOUS_SUFFIX = ".prev"
"""``last.pt.prev``: the checkpoint before the newest, kept so a run always has one good checkpoint."""


def atomic_save(obj: Any, path: Path, keep_previous: bool = False) -> None:
    """torch.save to a temporary file, flushed to disk, then renamed: a crash never leaves a broken checkpoint.

    ``keep_previous`` moves the checkpoint being replaced to ``<path>.prev`` first, so even a file
    corrupted after its write (a full disk, a bad copy) leaves the one before it to resume from.
    """

    def move_previous() -> None:
        if keep_previous and path.exists():
            os.replace(path, previous_checkpoint(path))

    atomic_write(path, lambda f: torch.save(obj, f), fsync=True, before_publish=move_previous)


def previous_checkpoint(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def has_checkpoint(run_dir: Path) -> bool:
    """``run_dir`` holds a checkpoint to resume (``last.pt``, or the one kept before it)."""
    ckpt = run_dir / CHECKPOINT_NAME
    return ckpt.is_file() or previous_checkpoint(ckpt).is_file()


def load_resumable(path: Path) -> tuple[dict[str, Any], Path]:
    """The newest readable checkpoint of a run: ``path``, else the previous one (``<path>.prev``)."""
    previous = previous_checkpoint(path)
    try:
        return load_checkpoint(path), path
    except ConfigError:
        if not previous.is_file():
            raise
        return load_checkpoint(previous), previous


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an rsbench checkpoint safely (``weights_only=True``: no code from the file runs)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    ckpt = torch_load_weights_only(path, "rsbench checkpoint")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "card" not in ckpt:
        raise ConfigError(f"{path}: not an rsbench checkpoint (no model/card entries)")
    missing = [k for k in CHECKPOINT_ENTRIES if k not in ckpt]
    if missing:
        raise ConfigError(f"{path}: not a complete rsbench checkpoint (missing entries: {', '.join(missing)})")
    if not isinstance(ckpt["model"], dict) or not isinstance(ckpt["card"], dict):
        raise ConfigError(f"{path}: not an rsbench checkpoint (model and card must be mappings)")
    return ckpt


def build_model(card: MethodCard, modalities: tuple[str, ...], num_classes: int) -> nn.Module:
    """The card's model for a dataset's modalities and classes (only the options its factory takes)."""
    return create_model(card.model, modalities=modalities, num_classes=num_classes, **model_kwargs(card))


def model_from_checkpoint(ckpt: dict[str, Any] | str | Path) -> tuple[nn.Module, MethodCard]:
    """Rebuild the trained model of a checkpoint (eval mode) and its resolved card."""
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    card = card_from_dict({**ckpt["card"], "pretrained": None})
    model = build_model(card, tuple(ckpt["modalities"]), int(ckpt["num_classes"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"checkpoint does not fit model {card.model}: {first}") from None
    return model.eval(), card
