"""DELIVER (Zhang et al., "Delivering Arbitrary-Modal Semantic Segmentation", CVPR 2023, arXiv 2303.01480).

CARLA front view, 25 classes, four modalities read as the published CMNeXt/RobustSeg
loaders read them (``semseg/datasets/deliver.py``):

- ``rgb``   ``img/..._rgb_front.png``, uint8: ``/255`` then ImageNet mean/std; alpha dropped.
- ``depth`` ``hha/..._depth_front.png`` (HHA, not the raw ``depth/`` folder), uint8: ``/255``.
- ``event`` ``event/..._event_front.png``, uint8: ``/255``. In ``*_eventlowres`` scenes the
  file is smaller (512x512 for 1042x1042 RGB) and is nearest-resized to the RGB size
  (``cv2.INTER_NEAREST``, the same pixels as torchvision's ``NEAREST``).
- ``lidar`` ``lidar/..._lidar_front.png``, uint8: ``/255``.

Every modality comes out float32 ``[3, H, W]``: a 1-channel file is repeated, a 4th
(alpha) channel is dropped; only RGB gets mean/std. The stored uint8 image (``[1|3, H, W]``)
is what ``EvalResize`` resizes, before ``/255`` and mean/std, as the released
``augmentations_mm.Resize`` + ``Normalize`` do. The label is channel 0 (R) of
``semantic/..._semantic_front.png`` (a 1-channel file works too): raw 1..25 -> classes
0..24, raw 0 (unlabelled) -> 255 = ignore; int64 ``[H, W]``.

Where rsbench differs from the published loader, on purpose:

- Raw 255 is not a DELIVER id; the published ``label[label == 255] = 0; label -= 1`` on
  uint8 silently ignores it. rsbench reports it as out of range unless
  ``ignore_raw_255=True`` (published behaviour). Any other raw id > 25 is an error.
- The published loader finds partners with ``path.replace('/img', ...)`` and filters
  with ``case in path`` on the whole absolute path, so a root containing ``/img``,
  ``rain``, ``sun``... breaks it. rsbench parses the path parts below the root:
  ``img/{condition}/{split}/{scene}/{frame}_rgb_front.png``, with the sensor-failure
  case being the scene folder's last ``_`` word (``MAP_1_point12_motionblur``).
- The published loader resizes events in every scene; rsbench resizes them only in
  ``eventlowres`` scenes and reports any other size mismatch (a broken download).
- Only ``*_rgb_front.png`` files under the five condition folders are indexed
  (published: any ``*.png``), and only 8-bit PNGs are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from rsbench.data.base import (
    IGNORE_INDEX,
    DatasetInfo,
    Sample,
    SampleRef,
    SegmentationDataset,
    channels_first,
    normalize_rgb_chw,
    scale_to_three,
)
from rsbench.errors import DataError
from rsbench.io import png_size, read_png

CONDITIONS = ("cloud", "fog", "night", "rain", "sun")
CASES = ("normal", "motionblur", "overexposure", "underexposure", "lidarjitter", "eventlowres")
CLASSES = (
    "Building", "Fence", "Other", "Pedestrian", "Pole", "RoadLine", "Road", "SideWalk", "Vegetation",
    "Cars", "Wall", "TrafficSign", "Sky", "Ground", "Bridge", "RailTrack", "GroundRail",
    "TrafficLight", "Static", "Dynamic", "Water", "Terrain", "TwoWheeler", "Bus", "Truck",
)  # fmt: skip
PALETTE = (
    (70, 70, 70), (100, 40, 40), (55, 90, 80), (220, 20, 60), (153, 153, 153), (157, 234, 50),
    (128, 64, 128), (244, 35, 232), (107, 142, 35), (0, 0, 142), (102, 102, 156), (220, 220, 0),
    (70, 130, 180), (81, 0, 81), (150, 100, 100), (230, 150, 140), (180, 165, 180), (250, 170, 30),
    (110, 190, 160), (170, 120, 50), (45, 60, 150), (145, 170, 100), (0, 0, 230), (0, 60, 100), (0, 0, 70),
)  # fmt: skip

# Modality -> (top folder, file-name word): the published '/img' -> '/hha', '_rgb' -> '_depth' etc.
_FILES = {
    "rgb": ("img", "rgb"),
    "depth": ("hha", "depth"),
    "event": ("event", "event"),
    "lidar": ("lidar", "lidar"),
    "label": ("semantic", "semantic"),
}
_RGB_SUFFIX = "_rgb_front.png"


def scene_case(scene: str) -> str:
    """Sensor-failure case of a scene folder: ``MAP_1_point12_motionblur`` -> ``motionblur``, else ``normal``."""
    word = scene.rsplit("_", 1)[-1]
    return word if word in CASES[1:] else "normal"


class DeliverDataset(SegmentationDataset):
    """DELIVER in its published layout (see the module docstring for every conversion).

    Args:
        root: the ``DELIVER`` folder (holding ``img/``, ``hha/``, ``event/``, ``lidar/``, ``semantic/``).
        split: ``train``, ``val`` or ``test``.
        modalities: subset/order of ``rgb, depth, event, lidar`` (default: all four).
        conditions: weather (``cloud, fog, night, rain, sun``) and/or case
            (``normal, motionblur, overexposure, underexposure, lidarjitter, eventlowres``).
        transform: applied to each sample dict.
        ignore_raw_255: treat raw label 255 as ignore, as the published loaders do
            (default: report it as an invalid id).
    """

    info: ClassVar[DatasetInfo] = DatasetInfo(
        name="deliver",
        modalities=("rgb", "depth", "event", "lidar"),
        classes=CLASSES,
        splits=("train", "val", "test"),
        conditions={"condition": CONDITIONS, "case": CASES},
        source="https://github.com/jamycheung/DELIVER (front-view DELIVER zip, link in the README)",
        layout=(
            "DELIVER/{img,hha,event,lidar,semantic}/{cond}/{split}/{scene}/"
            "{frame}_{rgb,depth,event,lidar,semantic}_front.png"
        ),
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
        ignore_raw_255: bool = False,
    ) -> None:
        self.ignore_raw_255 = ignore_raw_255
        super().__init__(root, split=split, modalities=modalities, conditions=conditions, transform=transform)

    # ----------------------------------------------------------------- index
    def _index(self) -> list[SampleRef]:
        if not (self.root / "img").is_dir():
            msg = self.missing_root_message(self.root)
            if (self.root / "DELIVER" / "img").is_dir():
                msg += f" (did you mean {self.root / 'DELIVER'}?)"
            raise DataError(msg)
        refs = []
        for cond in CONDITIONS:
            split_dir = self.root / "img" / cond / self.split
            if not split_dir.is_dir():
                continue
            for scene_dir in split_dir.iterdir():
                if scene_dir.is_dir():
                    refs.extend(self._ref(rgb, cond, scene_dir.name) for rgb in scene_dir.glob("*" + _RGB_SUFFIX))
        return sorted(refs, key=lambda r: r.id)

    def _ref(self, rgb: Path, cond: str, scene: str) -> SampleRef:
        frame = rgb.name[: -len(_RGB_SUFFIX)]
        files = {}
        for name in (*self.modalities, "label"):
            folder, word = _FILES[name]
            files[name] = self.root / folder / cond / self.split / scene / f"{frame}_{word}_front.png"
        meta = {"condition": cond, "case": scene_case(scene), "scene": scene}
        return SampleRef(id=rgb.relative_to(self.root).as_posix(), files=files, meta=meta)

    # ----------------------------------------------------------------- files
    def _read_uint8(self, path: Path) -> np.ndarray:
        """``[H, W]`` or ``[H, W, C]`` uint8 as stored (RGB order)."""
        img = read_png(path)
        if img.dtype != np.uint8:
            raise DataError(f"{path}: expected an 8-bit PNG, got {img.dtype}")
        if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
            raise DataError(f"{path}: expected 1, 3 or 4 channels, got {img.shape[2]}")
        return img

    def _read_modality(self, ref: SampleRef, name: str) -> np.ndarray:
        path = ref.files[name]
        img = self._read_uint8(path)
        height, width = png_size(self.root / ref.id)
        if img.shape[:2] != (height, width):
            if name == "event" and ref.meta["case"] == "eventlowres":
                img = cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)
            else:
                raise DataError(f"{path}: size {img.shape[0]}x{img.shape[1]} differs from the RGB {height}x{width}")
        return channels_first(img)  # channel count checked above, so this cannot raise

    def _convert_modality(self, name: str, raw: np.ndarray) -> np.ndarray:
        if name == "rgb":
            return normalize_rgb_chw(np.repeat(raw, 3, axis=0) if raw.shape[0] == 1 else raw)
        return scale_to_three(raw, 255.0)

    def _load_label(self, ref: SampleRef) -> np.ndarray:
        path = ref.files["label"]
        raw = self._read_uint8(path)
        raw = (raw[:, :, 0] if raw.ndim == 3 else raw).astype(np.int64)
        height, width = png_size(self.root / ref.id)
        if raw.shape != (height, width):
            raise DataError(f"{path}: size {raw.shape[0]}x{raw.shape[1]} differs from the RGB {height}x{width}")
        if self.ignore_raw_255:
            raw[raw == 255] = 0
        bad = raw > len(CLASSES)
        if bad.any():
            value = int(raw[bad][0])
            hint = "; pass ignore_raw_255=True to ignore it as the published loaders do" if value == 255 else ""
            raise DataError(f"{path}: raw label id {value} out of range (0 = unlabelled, 1..{len(CLASSES)}){hint}")
        return np.where(raw == 0, IGNORE_INDEX, raw - 1)
