"""Generated DELIVER look-alike (DATASETS.md sections 1 and 4), square ``size x size``.

Tree: ``{img,hha,depth,event,lidar,semantic}/{cond}/{split}/{scene}/{frame:06d}_{kind}_front.png``
(kind: rgb, depth, event, lidar, semantic; the hha/ and depth/ files share the ``_depth`` kind),
with ``cond`` cycling through cloud, fog, night, rain, sun. Per condition, every fourth sample
goes to a failure-case scene ``MAP_<m>_point<p>_<case>`` (cases rotate), the rest to normal
scenes of three frames each. Encodings:

- ``img`` uint8 RGB; ``hha`` uint8 3-ch (:func:`scene.hha`: disparity, height, normal angle);
- ``depth`` uint8 1-ch, ``255 * (1 - log1p(d) / log1p(1000))`` (near = bright, sky = 0);
- ``event`` uint8 3-ch ``[min(255, 85 * positive), 0, min(255, 85 * negative)]``, half size
  (counts summed over 2x2) in ``_eventlowres`` scenes;
- ``lidar`` uint8 1-ch, 0 = no return, else ``clip(255 * (1 - range / 80 m), 1, 255)``
  (``_lidarjitter`` displaces points by up to 2 px at 64 px);
- ``semantic`` uint8 3-ch, R = class + 1 (0 = unlabelled), G = B = 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsbench.data.synth import scene as sc
from rsbench.io import write_png

CONDITIONS = ("cloud", "fog", "night", "rain", "sun")
CASES = ("motionblur", "overexposure", "underexposure", "lidarjitter", "eventlowres")
MODALITY_KINDS = {"rgb": "appearance", "depth": "geometry", "event": "motion", "lidar": "geometry"}

_GREY = ((95, 95, 100),)
_CARS = ((170, 30, 30), (30, 60, 150), (200, 200, 205), (40, 40, 45), (180, 160, 40))
SPECS = [
    sc.ClassSpec(0, "Building", "back", ((110, 110, 115), (140, 120, 100), (90, 90, 95)), "windows"),
    sc.ClassSpec(3, "Pedestrian", "object", ((200, 60, 60), (60, 60, 180), (220, 200, 80), (50, 50, 50)),
                 shape="person", size_m=(1.6, 1.9, 0.5, 0.7), speed=(1.0, 2.0), weight=0.8),
    sc.ClassSpec(4, "Pole", "object", ((80, 80, 85),), "flat", shape="pole", size_m=(4.0, 6.0, 0.25, 0.35),
                 weight=0.6),
    sc.ClassSpec(5, "RoadLine", "marking", ((230, 230, 220),), "noise", host=6),
    sc.ClassSpec(6, "Road", "ground", _GREY, "noise", weight=1.3),
    sc.ClassSpec(7, "SideWalk", "ground", _GREY, "noise", raise_m=0.3),
    sc.ClassSpec(8, "Vegetation", "back", ((45, 110, 30), (60, 120, 35)), "blobs"),
    sc.ClassSpec(9, "Cars", "object", _CARS, "noise", shape="car", size_m=(1.4, 1.8, 3.5, 4.5), speed=(2.0, 3.5)),
    sc.ClassSpec(12, "Sky", "sky", ((135, 170, 215), (150, 185, 225)), "flat"),
    sc.ClassSpec(18, "Static", "object", _CARS, "noise", shape="car", size_m=(1.4, 1.8, 3.5, 4.5)),
    sc.ClassSpec(21, "Terrain", "ground", ((125, 105, 40), (85, 125, 35)), "blobs"),
]  # fmt: skip
LAYOUT = sc.Layout()


def visibility() -> list[tuple[str, tuple[str, ...]]]:
    return sc.visibility(SPECS, MODALITY_KINDS)


def plan(split: str, n: int) -> list[tuple[str, str, str, str]]:
    """``[(cond, scene_dir, frame, case)]`` for ``n`` samples of a split (case ``""`` = normal)."""
    out = []
    for i in range(n):
        c, j = i % len(CONDITIONS), i // len(CONDITIONS)
        group, slot = divmod(j, 4)
        scene = f"MAP_{(group + c) % 10 + 1}_point{10 * group + c + 1}"
        case = CASES[(group + c) % len(CASES)] if slot == 3 else ""
        out.append((CONDITIONS[c], f"{scene}_{case}" if case else scene, f"{45000 + 50 * group + 10 * slot:06d}", case))
    return out


def _lidar_image(pts: tuple[np.ndarray, ...], h: int, w: int, max_range: float) -> np.ndarray:
    rr, cc, rng_m = pts[:3]
    img = np.zeros((h, w), np.uint8)
    order = np.argsort(-rng_m, kind="stable")  # nearest return wins a pixel
    val = np.clip(np.round(255 * (1 - rng_m / max_range)), 1, 255).astype(np.uint8)
    img[rr[order], cc[order]] = val[order]
    return img


def write_sample(out: Path, split: str, cond: str, scene: str, frame: str, case: str, size: int,
                 rng: np.random.Generator) -> None:  # fmt: skip
    s = sc.make_scene(SPECS, LAYOUT, size, size, rng)
    night = cond == "night"
    rgb = sc.render_rgb(s, sc.look_for(cond, case), rng)
    ev = sc.render_events(s, rng, noise=0.02 if night else 0.008)
    if case == "eventlowres":
        ev = ev.reshape(size // 2, 2, size // 2, 2, 2).sum(axis=(1, 3))
    ev8 = np.zeros((*ev.shape[:2], 3), np.uint8)
    ev8[..., 0], ev8[..., 2] = np.minimum(255, 85 * ev[..., 0]), np.minimum(255, 85 * ev[..., 1])
    dropout = {"fog": 0.4, "rain": 0.35}.get(cond, 0.25)
    jitter = 2 * size / 64 if case == "lidarjitter" else 0.0
    pts = sc.lidar_points(s, rng, lines=size // 4, dropout=dropout, jitter=jitter)
    depth = np.round(255 * (1 - np.log1p(s.depth) / np.log1p(sc.SKY_DEPTH))).astype(np.uint8)
    label = np.zeros((size, size, 3), np.uint8)
    label[..., 0] = np.where(s.label == 255, 0, s.label.astype(np.int32) + 1)
    rel = Path(cond, split, scene)
    write_png(out / "img" / rel / f"{frame}_rgb_front.png", rgb)
    write_png(out / "hha" / rel / f"{frame}_depth_front.png", sc.hha(s))
    write_png(out / "depth" / rel / f"{frame}_depth_front.png", depth)
    write_png(out / "event" / rel / f"{frame}_event_front.png", ev8)
    write_png(out / "lidar" / rel / f"{frame}_lidar_front.png", _lidar_image(pts, size, size, 80.0))
    write_png(out / "semantic" / rel / f"{frame}_semantic_front.png", label)


def write(out: Path, size: int, counts: dict[str, int], seed: int) -> None:
    """Write the whole tree under ``out``; ``counts`` maps split -> number of samples."""
    for k, (split, n) in enumerate(counts.items()):
        for i, (cond, scene, frame, case) in enumerate(plan(split, n)):
            rng = np.random.default_rng([seed, 1, k, i])
            write_sample(out, split, cond, scene, frame, case, size, rng)
