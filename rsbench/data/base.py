"""The sample contract shared by every benchmark loader, and the checks built on it.

A sample is ``{"modalities": {name: FloatTensor[3, H, W]}, "label": LongTensor[H, W], "meta": {...}}``
with 255 as the ignore label. Every modality is a 3-channel image because RobustSeg
encodes all modalities with one shared encoder. A loader subclass only says where
the files are (:meth:`SegmentationDataset._index`) and how each file becomes an array
(:meth:`_load_modality`, :meth:`_load_label`); the contract, the validation of every
sample and ``rsbench data check`` live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from rsbench.errors import ConfigError, DataError

IGNORE_INDEX = 255
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

Sample = dict[str, Any]

# A truncated or corrupt file is reported once, as a DataError naming it; OpenCV's own decoder warnings
# ("PNG input buffer is incomplete") would be a second, unexplained line on stderr.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one benchmark layout."""

    name: str
    modalities: tuple[str, ...]
    """Default modality order (the published configuration)."""
    classes: tuple[str, ...]
    splits: tuple[str, ...]
    conditions: dict[str, tuple[str, ...]]
    """Condition field (a key of ``SampleRef.meta``, e.g. ``weather``) -> the values it takes."""
    source: str
    """Where to get the real data."""
    layout: str
    """One line describing the expected folder layout, shown when the root is wrong."""
    optional_modalities: tuple[str, ...] = ()
    """Modalities the layout can carry but the default configuration does not read."""
    palette: tuple[tuple[int, int, int], ...] = field(default=(), repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def condition_values(self) -> tuple[str, ...]:
        return tuple(v for values in self.conditions.values() for v in values)

    @property
    def all_modalities(self) -> tuple[str, ...]:
        return self.modalities + self.optional_modalities


@dataclass(frozen=True)
class SampleRef:
    """Where one sample's files are; built by the index, cheap to hold for thousands."""

    id: str
    """Relative path that identifies the sample uniquely within the split."""
    files: dict[str, Path]
    """Modality name -> file (plus ``"label"``; extra keys for files a loader reads, e.g. masks)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Condition fields (weather, time of day, case) parsed from the path."""


@dataclass(frozen=True)
class Problem:
    """One finding of ``check``: which sample, which file, what is wrong."""

    sample: str
    kind: str
    detail: str


class SegmentationDataset(Dataset):
    """Base class of the benchmark loaders. Subclasses set ``info`` and implement the hooks."""

    info: ClassVar[DatasetInfo]

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] | None = None,
        conditions: Sequence[str] | None = None,
        transform: Callable[[Sample], Sample] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.name = self.info.name
        """Name in records; ``create_dataset`` sets ``deliver-synth`` etc. for generated data."""
        if not self.root.is_dir():
            raise DataError(self.missing_root_message(self.root))
        if split not in self.info.splits:
            raise ConfigError(f"{self.info.name}: unknown split {split!r} (choose from {', '.join(self.info.splits)})")
        self.split = split
        self.modalities = tuple(modalities) if modalities else self.info.modalities
        unknown = [m for m in self.modalities if m not in self.info.all_modalities]
        if unknown or len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(
                f"{self.info.name}: bad modalities {list(self.modalities)} "
                f"(choose from {', '.join(self.info.all_modalities)})"
            )
        self.conditions = tuple(conditions) if conditions else ()
        bad = [c for c in self.conditions if c not in self.info.condition_values]
        if bad:
            raise ConfigError(
                f"{self.info.name}: unknown condition {bad[0]!r} (choose from {', '.join(self.info.condition_values)})"
            )
        self.transform = transform
        self.samples: list[SampleRef] = [r for r in self._index() if self._selected(r)]
        if not self.samples:
            what = f" with conditions {', '.join(self.conditions)}" if self.conditions else ""
            raise DataError(f"{self.info.name}: split {split!r}{what} is empty under {self.root} ({self.info.layout})")

    # ----------------------------------------------------------------- hooks
    def _index(self) -> list[SampleRef]:
        """All samples of ``self.split`` (sorted, deterministic), before the condition filter."""
        raise NotImplementedError

    def _load_modality(self, ref: SampleRef, name: str) -> np.ndarray:
        """Modality ``name`` of a sample as float32 ``[3, H, W]`` after the published conversion."""
        raise NotImplementedError

    def _load_label(self, ref: SampleRef) -> np.ndarray:
        """Label as int64 ``[H, W]``, classes ``0..K-1`` and 255 = ignore (out-of-range ids raise)."""
        raise NotImplementedError

    def _selected(self, ref: SampleRef) -> bool:
        """Whether a sample passes the ``conditions`` filter.

        Values of one field are alternatives (``fog, rain``: either); values of different
        fields must all hold (``fog, night``: foggy nights).
        """
        for field_name, values in self.info.conditions.items():
            wanted = [c for c in self.conditions if c in values]
            if wanted and ref.meta.get(field_name) not in wanted:
                return False
        return True

    # ------------------------------------------------------------- contract
    @classmethod
    def missing_root_message(cls, root: Path) -> str:
        return (
            f"{cls.info.name} not found at {root}: expected {cls.info.layout}; get it from {cls.info.source}, "
            f"or use the generated look-alike '{cls.info.name}-synth'"
        )

    def __len__(self) -> int:
        return len(self.samples)

    def load_arrays(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Modalities and label of one sample as numpy arrays, validated against each other."""
        ref = self.samples[index]
        label = self._load_label(ref)
        if label.ndim != 2:
            raise DataError(f"{ref.id}: label must be 2-D, got shape {label.shape}")
        bad = (label != IGNORE_INDEX) & ((label < 0) | (label >= self.info.num_classes))
        if bad.any():
            raise DataError(
                f"{ref.files.get('label', ref.id)}: label id {int(label[bad][0])} out of range "
                f"0..{self.info.num_classes - 1} (or 255)"
            )
        mods = {}
        for name in self.modalities:
            arr = self._load_modality(ref, name)
            if arr.shape != (3, *label.shape):
                raise DataError(
                    f"{ref.id}: {name} has shape {tuple(arr.shape)}, expected (3, {label.shape[0]}, {label.shape[1]})"
                )
            mods[name] = arr
        return mods, label

    def __getitem__(self, index: int) -> Sample:
        mods, label = self.load_arrays(index)
        ref = self.samples[index]
        sample: Sample = {
            "modalities": {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in mods.items()},
            "label": torch.from_numpy(label.astype(np.int64)),
            "meta": {"id": ref.id, "dataset": self.name, "split": self.split, **ref.meta},
        }
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def check(self, progress: Callable[[int], None] | None = None) -> list[Problem]:
        """Validate every sample: partner files present, readable, sizes agree, label ids in range."""
        problems: list[Problem] = []
        for i, ref in enumerate(self.samples):
            missing = [k for k, p in ref.files.items() if not p.is_file()]
            if missing:
                problems.extend(Problem(ref.id, "missing", str(ref.files[k])) for k in missing)
            else:
                try:
                    self.load_arrays(i)
                except DataError as exc:
                    problems.append(Problem(ref.id, "invalid", str(exc)))
            if progress is not None:
                progress(i + 1)
        return problems

    def counts(self) -> dict[str, int]:
        """Number of samples per condition value (for the ``data check`` table)."""
        out: dict[str, int] = {}
        for ref in self.samples:
            key = "/".join(str(ref.meta.get(f, "?")) for f in self.info.conditions) or "all"
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))


def normalize_rgb(img: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """``[H, W, 3]`` integer RGB -> float32 ``[3, H, W]``: /scale, then ImageNet mean/std (published)."""
    x = img[:, :, :3].astype(np.float32) / scale
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_three_channels(img: np.ndarray) -> np.ndarray:
    """``[H, W]``, ``[H, W, 1|3|4]`` -> ``[3, H, W]`` as the published ``_open_img`` (repeat 1, drop alpha)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.shape[2] != 3:
        raise DataError(f"expected 1, 3 or 4 channels, got {img.shape[2]}")
    return np.ascontiguousarray(img.transpose(2, 0, 1))
