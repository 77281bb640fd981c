"""Hand-written DELIVER samples in the real on-disk formats (tiny sizes), for the loader tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rsbench.io import write_png

FOLDERS = {"rgb": "img", "depth": "hha", "event": "event", "lidar": "lidar", "label": "semantic"}
WORDS = {"rgb": "rgb", "depth": "depth", "event": "event", "lidar": "lidar", "label": "semantic"}


def deliver_path(root: Path, name: str, cond: str, split: str, scene: str, frame: str) -> Path:
    """Where the published layout keeps modality ``name`` (or ``"label"``) of one frame."""
    return root / FOLDERS[name] / cond / split / scene / f"{frame}_{WORDS[name]}_front.png"


def write_rgba(path: Path, img: np.ndarray) -> None:
    """``[H, W, 4]`` uint8 RGBA PNG (``rsbench.io.write_png`` writes 1 or 3 channels only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(img[:, :, [2, 1, 0, 3]]))


def _add_alpha(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)


def write_deliver_sample(
    root: Path,
    cond: str = "cloud",
    split: str = "train",
    scene: str = "MAP_1_point12",
    frame: str = "045050",
    size: int = 32,
    *,
    raw_label: np.ndarray | None = None,
    label_channels: int = 3,
    rgb_channels: int = 3,
    depth_channels: int = 3,
    event_size: int | None = None,
    lidar_size: int | None = None,
    alpha: tuple[str, ...] = (),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write one frame's five PNGs and return the arrays written (RGB order, before any alpha).

    Formats as DATASETS.md 1.2: uint8 RGB; 3-channel HHA; event with polarities in R and B
    (G = 0); 1-channel sparse LiDAR; label with the raw CARLA id in R (G, B unrelated noise).
    """
    rng = np.random.default_rng(seed)
    h = w = size
    arrays: dict[str, np.ndarray] = {}
    arrays["rgb"] = rng.integers(0, 256, (h, w, 3) if rgb_channels == 3 else (h, w), dtype=np.uint8)
    arrays["depth"] = rng.integers(0, 256, (h, w, 3) if depth_channels == 3 else (h, w), dtype=np.uint8)
    es = event_size or size
    event = rng.integers(0, 256, (es, es, 3), dtype=np.uint8)
    event[:, :, 1] = 0
    arrays["event"] = event
    ls = lidar_size or size
    arrays["lidar"] = np.where(rng.random((ls, ls)) < 0.1, rng.integers(1, 256, (ls, ls)), 0).astype(np.uint8)
    raw = raw_label if raw_label is not None else rng.integers(0, 26, (h, w)).astype(np.uint8)
    if label_channels == 3:
        label = np.stack([raw, rng.integers(0, 256, (h, w)), rng.integers(0, 256, (h, w))], axis=2).astype(np.uint8)
    else:
        label = raw.astype(np.uint8)
    arrays["label"] = label
    for name, img in arrays.items():
        path = deliver_path(root, name, cond, split, scene, frame)
        if name in alpha:
            write_rgba(path, _add_alpha(img))
        else:
            write_png(path, img)
    return arrays
