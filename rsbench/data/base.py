"""The sample contract shared by every benchmark loader, and the checks built on it.

A sample is ``{"modalities": {name: FloatTensor[3, H, W]}, "label": LongTensor[H, W], "meta": {...}}``
with 255 as the ignore label. Every modality is a 3-channel image because RobustSeg
encodes all modalities with one shared encoder. A loader subclass only says where
the files are (:meth:`SegmentationDataset._index`) and how each file becomes an array
in two steps: :meth:`_read_modality` (the file as stored, in its own integer or float type)
and :meth:`_convert_modality` (the published conversion to float32: ``/255``, mean/std, ...),
plus :meth:`_load_label`; the contract, the validation of every sample and ``rsbench data
check`` live here once.

The two steps exist so that an evaluation resize can act where the released code resizes:
on the stored 8-bit (16-bit) image, before normalisation. A transform whose ``raw_input`` is
true (:class:`RawTransform`, e.g. ``rsbench.data.transforms.EvalResize``) receives the raw
arrays and the label between the steps; any other transform receives the finished sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

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


class RawTransform(Protocol):
    """A transform that acts on the stored arrays, before the published conversion.

    When ``raw_input`` is true, the dataset calls ``apply_raw(modalities, label)`` with
    ``{name: [C, H, W]}`` in each file's own dtype (C is 1 or 3; uint8/uint16 for image files,
    float32 for float files) and the int64 ``[H, W]`` label; it returns both (resized alike) and the
    dataset then converts the modalities; the transform is not called again on the sample. When
    ``raw_input`` is false (or absent) the transform is called on the finished sample instead.
    """

    raw_input: bool

    def apply_raw(
        self, modalities: dict[str, np.ndarray], label: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray]: ...


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

    def _read_modality(self, ref: SampleRef, name: str) -> np.ndarray:
        """Modality ``name`` as stored: ``[C, H, W]`` (C = 1 or 3) in the file's own type, before conversion.

        Integer files stay integer (uint8, uint16), float files float32; partner files are
        already combined and cropped (the sample's geometry is final apart from resizing).
        """
        raise NotImplementedError

    def _convert_modality(self, name: str, raw: np.ndarray) -> np.ndarray:
        """The published conversion of :meth:`_read_modality`'s array: float32 ``[3, H, W]``."""
        raise NotImplementedError

    def _load_modality(self, ref: SampleRef, name: str) -> np.ndarray:
        """Modality ``name`` of a sample as float32 ``[3, H, W]`` after the published conversion.

        A subclass implements :meth:`_read_modality` and :meth:`_convert_modality`; one that
        overrides only this method still works, and raw transforms then see its float output.
        """
        return self._convert_modality(name, self._read_modality(ref, name))

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

    def _reads_raw(self) -> bool:
        """Whether this loader has the two-step read (else ``_load_modality`` is the only hook)."""
        return type(self)._read_modality is not SegmentationDataset._read_modality

    def _checked_label(self, ref: SampleRef) -> np.ndarray:
        label = self._load_label(ref)
        if label.ndim != 2:
            raise DataError(f"{ref.id}: label must be 2-D, got shape {label.shape}")
        bad = (label != IGNORE_INDEX) & ((label < 0) | (label >= self.info.num_classes))
        if bad.any():
            raise DataError(
                f"{ref.files.get('label', ref.id)}: label id {int(label[bad][0])} out of range "
                f"0..{self.info.num_classes - 1} (or 255)"
            )
        return label

    def load_raw(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Modalities as stored (``[C, H, W]``, file dtype, see :meth:`_read_modality`) and the label, validated."""
        ref = self.samples[index]
        label = self._checked_label(ref)
        raw_step = self._reads_raw()
        mods = {}
        for name in self.modalities:
            arr = self._read_modality(ref, name) if raw_step else self._load_modality(ref, name)
            channels = arr.shape[0] if arr.ndim == 3 and arr.shape[0] in (1, 3) else 3
            if arr.shape != (channels, *label.shape):
                raise DataError(
                    f"{ref.id}: {name} has shape {tuple(arr.shape)}, "
                    f"expected ({channels}, {label.shape[0]}, {label.shape[1]})"
                )
            mods[name] = arr
        return mods, label

    def convert(self, raw: dict[str, np.ndarray], ref: SampleRef | None = None) -> dict[str, np.ndarray]:
        """:meth:`load_raw`'s modalities (resized or not) -> float32 ``[3, H, W]`` each (the published conversion)."""
        if not self._reads_raw():
            return raw
        out = {}
        for name, arr in raw.items():
            conv = self._convert_modality(name, arr)
            if conv.shape != (3, *arr.shape[1:]) or conv.dtype != np.float32:
                where = ref.id if ref is not None else name
                raise DataError(
                    f"{where}: {name} converted to {conv.dtype} {tuple(conv.shape)}, expected float32 3-channel"
                )
            out[name] = conv
        return out

    def load_arrays(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Modalities (float32 ``[3, H, W]``, converted) and label of one sample, validated against each other."""
        raw, label = self.load_raw(index)
        return self.convert(raw, self.samples[index]), label

    def __getitem__(self, index: int) -> Sample:
        ref = self.samples[index]
        raw_transform = bool(getattr(self.transform, "raw_input", False))
        if raw_transform:
            raw, label = self.load_raw(index)
            raw, label = self.transform.apply_raw(raw, label)  # type: ignore[union-attr]
            mods = self.convert(raw, ref)
        else:
            mods, label = self.load_arrays(index)
        sample: Sample = {
            "modalities": {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in mods.items()},
            "label": torch.from_numpy(label.astype(np.int64)),
            "meta": {"id": ref.id, "dataset": self.name, "split": self.split, **ref.meta},
        }
        if self.transform is not None and not raw_transform:
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
    return normalize_rgb_chw(np.ascontiguousarray(img[:, :, :3].transpose(2, 0, 1)), scale)


def normalize_rgb_chw(img: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """``[3, H, W]`` integer RGB -> float32 ``[3, H, W]``: /scale, then ImageNet mean/std (published)."""
    x = img[:3].astype(np.float32) / np.float32(scale)
    x = (x - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    return np.ascontiguousarray(x, dtype=np.float32)


def scale_to_three(img: np.ndarray, scale: float) -> np.ndarray:
    """``[1|3, H, W]`` integer image -> float32 ``[3, H, W]`` = image / scale (1 channel repeated)."""
    x = img.astype(np.float32) / np.float32(scale)
    return np.ascontiguousarray(np.repeat(x, 3, axis=0) if x.shape[0] == 1 else x)


def channels_first(img: np.ndarray) -> np.ndarray:
    """``[H, W]``, ``[H, W, 1|3|4]`` -> ``[1|3, H, W]`` in the same dtype (alpha dropped, 1 channel kept)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.shape[2] not in (1, 3):
        raise DataError(f"expected 1, 3 or 4 channels, got {img.shape[2]}")
    return np.ascontiguousarray(img.transpose(2, 0, 1))


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
