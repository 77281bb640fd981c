"""MUSES (Brödermann et al., ECCV 2024): frame camera + projected event camera, LiDAR and radar, 19 classes.

Two on-disk layouts are read, detected from the root (DATASETS.md 2.1-2.3):

- ``release``: the official download with the SDK's ``scripts/project_sensors_to_rgb.py
  --event_camera --lidar --radar --output_file_type .png`` output next to it::

      frame_camera/{split}/{weather}/{tod}/{stem}_frame_camera.png
      gt_semantic/{split}/{weather}/{tod}/{stem}_gt_labelTrainIds.png
      projected_to_rgb/{lidar,radar,event_camera}/{split}/{weather}/{tod}/{stem}_{lidar|radar|event_camera}.png

- ``flat``: the RobustSeg/AnySeg layout, the same folders side by side
  (``frame_camera/``, ``event_camera/``, ``lidar/``, ``radar/``, ``gt_semantic/`` under one root).

``auto`` picks ``release`` when ``projected_to_rgb/`` exists, else ``flat``. Both give the same
samples: the id is the frame file's path relative to the root, meta is ``{"weather", "time_of_day"}``.

Conversions (every output is float32 ``[3, H, W]`` at the native 1080x1920; resizing is a transform,
``EvalResize``, which acts on the stored uint8/uint16 image before the conversion):

- ``frame``: uint8 RGB -> /255 -> ImageNet mean/std.
- ``lidar``/``radar``: uint16 3-channel PNG, stored value = (v + 100) * 150, so v = png / 150 - 100
  (:func:`decode_projected`; empty pixels, stored as 15000, decode to 0). Channels: lidar
  [range m, intensity, height m], radar [range m, intensity, 0]. Then per-channel standardisation:
  lidar with CAFuser's decoded-image stats (mean 4.92/6.15/0.27, std 13.3/17.6/1.23); radar has no
  published stats, so rsbench uses mean 0 (empty stays 0) and the LiDAR range/intensity std
  (13.3, 17.6, 1) to give both sensors one scale (a choice, not checked against real radar files).
- ``event``: uint8 [positive count, negative count, 0] -> float counts -> CAFuser stats
  (mean 0.126/0.127/0, std 0.544/0.476/1).
- label: uint8 Cityscapes trainIds 0..18, 255 = ignore (channel 0 if the PNG has several channels).

Differences from the published RobustSeg/AnySeg loader, on purpose:

- Conditions come from the path parts below the root, not from ``weather in path`` substring tests,
  so a root such as ``/data/rain-night/`` works.
- LiDAR/radar are decoded from all 16 bits. RobustSeg reads them through Pillow (8 bits kept) and
  min-max normalises each image; ``lidar_norm="minmax"`` reproduces that (see :func:`minmax_robustseg`).
- RobustSeg/AnySeg turn ignore (255) into class 0 (road); rsbench keeps 255 ignored unless
  ``ignore_to_road=True``.
- No 1024x1024 resize in the loader, and frames are ImageNet-normalised (RobustSeg yields 0..255).

MUSES test labels are withheld (Codabench); ``split="test"`` without ``gt_semantic/test`` files raises.
A ``meta.json`` at the root is optional and only cross-checked against the folders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from rsbench.data.base import (
    IGNORE_INDEX,
    DatasetInfo,
    Sample,
    SampleRef,
    SegmentationDataset,
    channels_first,
    normalize_rgb_chw,
)
from rsbench.errors import ConfigError, DataError
from rsbench.io import read_png

CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip
WEATHERS = ("clear", "fog", "rain", "snow")
TIMES_OF_DAY = ("day", "night")

FOLDERS = {"frame": "frame_camera", "event": "event_camera", "lidar": "lidar", "radar": "radar"}
"""rsbench modality name -> MUSES folder name (also the file-name suffix)."""
FRAME_SUFFIX = "_frame_camera.png"
LABEL_SUFFIX = "_gt_labelTrainIds.png"

PROJECTED_OFFSET = 100.0
PROJECTED_SCALE = 150.0
PROJECTED_EMPTY = 15000
"""Stored value of an empty pixel: (0 + 100) * 150."""
NORM_STATS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "lidar": (np.array([4.92, 6.15, 0.27], np.float32), np.array([13.3, 17.6, 1.23], np.float32)),
    "radar": (np.zeros(3, np.float32), np.array([13.3, 17.6, 1.0], np.float32)),
    "event": (np.array([0.126, 0.127, 0.0], np.float32), np.array([0.544, 0.476, 1.0], np.float32)),
}
"""Per-channel (mean, std) of the decoded images; lidar/event from CAFuser, radar chosen (module doc)."""

Layout = Literal["auto", "release", "flat"]
LidarNorm = Literal["stats", "minmax"]
_RAW_HINTS = {
    ".npz": "projected sensors were written as .npz; rerun the SDK's scripts/project_sensors_to_rgb.py "
    "with --output_file_type .png",
    ".bin": "raw LiDAR found where a projected PNG was expected; run the SDK's scripts/project_sensors_to_rgb.py "
    "--event_camera --lidar --radar --output_file_type .png and point rsbench at the release root",
    ".h5": "raw events found where a projected PNG was expected; run the SDK's scripts/project_sensors_to_rgb.py "
    "--event_camera --lidar --radar --output_file_type .png and point rsbench at the release root",
}


def decode_projected(png: np.ndarray) -> np.ndarray:
    """Undo the SDK's PNG encoding: uint16 ``[H, W, 3]`` -> float32 ``[H, W, 3]`` with v = png / 150 - 100.

    Empty pixels (15000) become exactly 0; values are metres for range/height.
    """
    if png.dtype != np.uint16 or png.ndim != 3 or png.shape[2] != 3:
        raise DataError(f"projected sensor image must be uint16 [H, W, 3], got {png.dtype} {list(png.shape)}")
    return png.astype(np.float32) / np.float32(PROJECTED_SCALE) - np.float32(PROJECTED_OFFSET)


def minmax_robustseg(png: np.ndarray) -> np.ndarray:
    """RobustSeg's LiDAR/radar input: uint16 ``[H, W, 3]`` -> float32 ``[3, H, W]`` in 0..255.

    Pillow's ``convert('RGB')`` keeps the most significant byte of each 16-bit sample (png >> 8, checked
    with Pillow 13); the result is min-max scaled to 0..255 over the whole image (all channels together).
    A constant image gives zeros (RobustSeg divides by zero there). RobustSeg resizes the 8-bit image
    (Pillow bicubic, to a fixed 1024x1024) before its min-max; in the loader, ``EvalResize`` likewise
    resizes the 8-bit reading before the min-max (with its own filter and size, see ``EvalResize``).
    """
    return _minmax_8bit(np.ascontiguousarray((png >> 8).astype(np.uint8).transpose(2, 0, 1)))


def _minmax_8bit(chw: np.ndarray) -> np.ndarray:
    """The 8-bit Pillow reading ``[3, H, W]`` (png >> 8) min-max scaled to 0..255 over the whole image."""
    x = chw.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros_like(x)
    return np.ascontiguousarray((x - lo) / (hi - lo) * 255.0, dtype=np.float32)


def _describe(img: np.ndarray) -> str:
    channels = 1 if img.ndim == 2 else img.shape[2]
    return f"{img.dtype.itemsize * 8}-bit {channels}-channel"


def _standardise(x: np.ndarray, name: str) -> np.ndarray:
    """float32 ``[3, H, W]`` -> ``[3, H, W]`` with the per-channel stats of ``name``."""
    mean, std = NORM_STATS[name]
    return np.ascontiguousarray((x - mean[:, None, None]) / std[:, None, None], dtype=np.float32)


class MusesDataset(SegmentationDataset):
    """MUSES semantic segmentation in the release or RobustSeg layout (module docstring: conversions).

    Args:
        layout: ``auto`` (``release`` if ``projected_to_rgb/`` exists, else ``flat``), ``release`` or ``flat``.
        lidar_norm: ``stats`` (decode 16 bits, standardise) or ``minmax`` (RobustSeg's per-image min-max
            of the 8-bit Pillow reading, 0..255; applies to radar too).
        ignore_to_road: reproduce RobustSeg/AnySeg's ``label[label == 255] = 0``.
    """

    info = DatasetInfo(
        name="muses",
        modalities=("frame", "event", "lidar"),
        optional_modalities=("radar",),
        classes=CLASSES,
        splits=("train", "val", "test"),
        conditions={"weather": WEATHERS, "time_of_day": TIMES_OF_DAY},
        source="https://muses.vision.ee.ethz.ch (registration) + SDK https://github.com/timbroed/MUSES",
        layout="frame_camera/, gt_semantic/ and projected_to_rgb/{lidar,radar,event_camera}/ as "
        "{split}/{weather}/{tod}/{stem}_*.png (SDK project_sensors_to_rgb.py, PNG), or those folders side by side",
        palette=PALETTE,
    )

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] | None = None,
        conditions: Sequence[str] | None = None,
        transform: Callable[[Sample], Sample] | None = None,
        *,
        layout: Layout = "auto",
        lidar_norm: LidarNorm = "stats",
        ignore_to_road: bool = False,
    ) -> None:
        if layout not in ("auto", "release", "flat"):
            raise ConfigError(f"muses: unknown layout {layout!r} (choose from auto, release, flat)")
        if lidar_norm not in ("stats", "minmax"):
            raise ConfigError(f"muses: unknown lidar_norm {lidar_norm!r} (choose from stats, minmax)")
        self.layout: str = layout
        self.lidar_norm = lidar_norm
        self.ignore_to_road = bool(ignore_to_road)
        super().__init__(root, split=split, modalities=modalities, conditions=conditions, transform=transform)

    # ----------------------------------------------------------------- index
    def _resolve_layout(self) -> str:
        projected = self.root / "projected_to_rgb"
        if self.layout == "auto":
            return "release" if projected.is_dir() else "flat"
        if self.layout == "release" and not projected.is_dir():
            raise DataError(f"muses: layout 'release' needs {projected} (SDK project_sensors_to_rgb.py output)")
        return self.layout

    def _file(self, name: str, parts: tuple[str, str, str], stem: str) -> Path:
        if name == "label":
            return self.root.joinpath("gt_semantic", *parts, stem + LABEL_SUFFIX)
        folder = FOLDERS[name]
        base = self.root / "projected_to_rgb" if self.layout == "release" and name != "frame" else self.root
        return base.joinpath(folder, *parts, f"{stem}_{folder}.png")

    def _index(self) -> list[SampleRef]:
        if not (self.root / "frame_camera").is_dir():
            raise DataError(self.missing_root_message(self.root))
        self.layout = self._resolve_layout()
        refs = []
        for path in (self.root / "frame_camera" / self.split).glob(f"*/*/*{FRAME_SUFFIX}"):
            _, split, weather, tod, name = path.relative_to(self.root).parts
            if any(p.startswith(".") for p in (weather, tod, name)):
                continue
            if weather not in WEATHERS or tod not in TIMES_OF_DAY:
                raise DataError(
                    f"{path}: unexpected folders {weather}/{tod} (weather: {', '.join(WEATHERS)}; "
                    f"time of day: {', '.join(TIMES_OF_DAY)})"
                )
            stem = name[: -len(FRAME_SUFFIX)]
            files = {m: self._file(m, (split, weather, tod), stem) for m in self.modalities}
            files["label"] = self._file("label", (split, weather, tod), stem)
            rel = path.relative_to(self.root).as_posix()
            refs.append(SampleRef(id=rel, files=files, meta={"weather": weather, "time_of_day": tod}))
        refs.sort(key=lambda r: r.id)
        if refs:
            self._check_layout(refs[0])
            if self.split == "test" and not any(r.files["label"].is_file() for r in refs):
                raise DataError(
                    f"muses: test labels are withheld (no files under {self.root / 'gt_semantic' / 'test'}); "
                    "score test predictions on Codabench, or evaluate on split 'val'"
                )
            self._cross_check_meta(refs)
        return refs

    def _check_layout(self, ref: SampleRef) -> None:
        """Catch a whole-layout mistake early (raw or .npz sensor files instead of projected PNGs)."""
        for name in self.modalities:
            path = ref.files[name]
            if name == "frame" or path.is_file():
                continue
            for ext, hint in _RAW_HINTS.items():
                if path.with_suffix(ext).is_file():
                    raise DataError(f"{path.with_suffix(ext)}: {hint}")

    def _cross_check_meta(self, refs: list[SampleRef]) -> None:
        """If ``meta.json`` exists, its split/weather/time_of_day must agree with the folders."""
        path = self.root / "meta.json"
        if not path.is_file():
            return
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"unreadable meta.json: {path} ({exc})") from None
        if not isinstance(meta, dict):
            raise DataError(f"{path}: expected an object keyed by sample stem")
        vocab = {"split": self.info.splits, "weather": WEATHERS, "time_of_day": TIMES_OF_DAY}
        for ref in refs:
            entry = meta.get(Path(ref.id).name[: -len(FRAME_SUFFIX)])
            if not isinstance(entry, dict):
                continue
            for key, value in {"split": self.split, **ref.meta}.items():
                got = entry.get(key)
                if isinstance(got, str) and got in vocab[key] and got != value:
                    raise DataError(f"{self.root / ref.id}: folder says {key}={value!r} but {path} says {got!r}")

    # ----------------------------------------------------------------- files
    def _read_modality(self, ref: SampleRef, name: str) -> np.ndarray:
        """uint8 [3, H, W] for frame/event; lidar/radar uint16 (``stats``) or the 8-bit Pillow reading (``minmax``)."""
        path = ref.files[name]
        img = read_png(path)
        if name == "frame":
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
                raise DataError(f"{path}: expected an 8-bit RGB frame, got {_describe(img)}")
            return channels_first(img)
        if name == "event":
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise DataError(f"{path}: expected an 8-bit 3-channel event image [pos, neg, 0], got {_describe(img)}")
            return channels_first(img)
        if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != 3:
            raise DataError(
                f"{path}: expected a 16-bit 3-channel projected {name} PNG ((v + 100) * 150), got {_describe(img)}"
            )
        if self.lidar_norm == "minmax":  # RobustSeg: Pillow keeps 8 bits, resizes, then min-max
            return np.ascontiguousarray((img >> 8).astype(np.uint8).transpose(2, 0, 1))
        return channels_first(img)

    def _convert_modality(self, name: str, raw: np.ndarray) -> np.ndarray:
        if name == "frame":
            return normalize_rgb_chw(raw)
        if name == "event":
            return _standardise(raw.astype(np.float32), name)
        if self.lidar_norm == "minmax":
            return _minmax_8bit(raw)
        decoded = raw.astype(np.float32) / np.float32(PROJECTED_SCALE) - np.float32(PROJECTED_OFFSET)
        return _standardise(decoded, name)

    def _load_label(self, ref: SampleRef) -> np.ndarray:
        img = read_png(ref.files["label"])
        label = (img if img.ndim == 2 else img[:, :, 0]).astype(np.int64)
        if self.ignore_to_road:
            label[label == IGNORE_INDEX] = 0
        return label
