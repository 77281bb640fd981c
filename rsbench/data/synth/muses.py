"""Generated MUSES look-alike in the release layout (DATASETS.md sections 2 and 4), ``size x round(size*16/9)``.

Tree (``{p} = {split}/{weather}/{tod}``, stem ``REC{rec:04d}_frame_{i:06d}``):
``frame_camera/{p}/{stem}_frame_camera.png`` (uint8 RGB),
``gt_semantic/{p}/{stem}_gt_labelTrainIds.png`` (uint8 trainIds, 255 = ignore),
``projected_to_rgb/{lidar,radar,event_camera}/{p}/{stem}_{lidar|radar|event_camera}.png`` and
``meta.json`` (stem -> split, weather, time_of_day, ... and the release's raw ``path_to_*``
entries, which point at raw files that are not generated). Samples cycle through the eight
weather x time-of-day cells. Unlike the real release, **test is labelled too** (generated data
has nothing to withhold).

Encodings: lidar uint16 3-ch ``(v + 100) * 150`` over ``[range m, intensity 0..100, z m]`` with
``z`` = height above the road minus the 1.8 m sensor height and empty pixels 15000 (v = 0);
radar the same over ``[range, intensity, 0]`` (few points, metal reflects, weather-proof);
event_camera uint8 ``[positive count, negative count, 0]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rsbench.data.synth import scene as sc
from rsbench.io import write_png, write_text

WEATHERS = ("clear", "fog", "rain", "snow")
TIMES = ("day", "night")
MODALITY_KINDS = {"frame": "appearance", "event": "motion", "lidar": "lidar", "radar": "radar"}
LIDAR_SENSOR_HEIGHT = 1.8

_GREY = ((100, 98, 105),)
_VEHICLES = ((170, 30, 30), (30, 60, 150), (200, 200, 205), (40, 40, 45))
SPECS = [
    sc.ClassSpec(0, "road", "ground", _GREY, "noise", lidar=0.2, weight=1.3),
    sc.ClassSpec(1, "sidewalk", "ground", _GREY, "noise", raise_m=0.3, lidar=0.2),
    sc.ClassSpec(2, "building", "back", ((110, 110, 115), (140, 120, 100)), "windows", lidar=0.5, radar=0.3),
    sc.ClassSpec(5, "pole", "object", ((80, 80, 85),), "flat", shape="pole", size_m=(4.0, 6.0, 0.25, 0.35),
                 lidar=0.6, radar=0.8, weight=0.6),
    sc.ClassSpec(8, "vegetation", "back", ((45, 110, 30), (60, 120, 35)), "blobs", lidar=0.5, radar=0.3),
    sc.ClassSpec(9, "terrain", "ground", ((125, 105, 40), (85, 125, 35)), "blobs", lidar=0.2),
    sc.ClassSpec(10, "sky", "sky", ((135, 170, 215), (150, 185, 225)), "flat"),
    sc.ClassSpec(11, "person", "object", ((200, 60, 60), (60, 60, 180), (220, 200, 80), (50, 50, 50)),
                 shape="person", size_m=(1.6, 1.9, 0.5, 0.7), speed=(1.0, 2.0), lidar=0.35, radar=0.2, weight=0.8),
    sc.ClassSpec(13, "car", "object", _VEHICLES, "noise", shape="car", size_m=(1.4, 1.8, 3.5, 4.5),
                 speed=(2.0, 3.5), lidar=0.7, radar=0.9),
    sc.ClassSpec(14, "truck", "object", _VEHICLES, "noise", shape="car", size_m=(1.4, 1.8, 3.5, 4.5),
                 lidar=0.9, radar=0.9),
]  # fmt: skip
LAYOUT = sc.Layout()


def visibility() -> list[tuple[str, tuple[str, ...]]]:
    return sc.visibility(SPECS, MODALITY_KINDS)


def encode_projected(img: np.ndarray) -> np.ndarray:
    """Float ``[H, W, 3]`` (0 = empty) -> the SDK's uint16 PNG encoding ``(v + 100) * 150``."""
    return np.clip(np.round((img + 100.0) * 150.0), 0, 65535).astype(np.uint16)


def _project(rr: np.ndarray, cc: np.ndarray, chans: list[np.ndarray], rng_m: np.ndarray, h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.float32)
    order = np.argsort(-rng_m, kind="stable")  # nearest return wins a pixel
    for k, ch in enumerate(chans):
        img[rr[order], cc[order], k] = ch[order]
    return img


def write_sample(out: Path, split: str, weather: str, tod: str, stem: str, h: int, w: int,
                 rng: np.random.Generator) -> dict:  # fmt: skip
    s = sc.make_scene(SPECS, LAYOUT, h, w, rng)
    rgb = sc.render_rgb(s, sc.look_for(weather, tod), rng)
    ev = sc.render_events(s, rng, noise=0.02 if tod == "night" else 0.008)
    ev8 = np.zeros((h, w, 3), np.uint8)
    ev8[..., :2] = np.minimum(ev, 255)
    dropout = {"fog": 0.45, "snow": 0.4, "rain": 0.35}.get(weather, 0.25)
    clutter = {"snow": 0.15, "fog": 0.08, "rain": 0.05}.get(weather, 0.0)
    rr, cc, rng_m, inten, hgt = sc.lidar_points(s, rng, lines=h // 3, dropout=dropout, max_range=120.0, clutter=clutter)
    lidar = _project(rr, cc, [rng_m, 100.0 * inten, hgt - LIDAR_SENSOR_HEIGHT], rng_m, h, w)
    # radar: a few returns per column band, elevation smeared, reflectivity-weighted
    cand = (~s.sky) & (rng.random((h, w)) < 0.06 * s.radar)
    ry, rx = np.nonzero(cand)
    r_rng = s.depth[ry, rx] * (1 + rng.normal(0, 0.03, ry.size))
    ry = np.clip(ry + rng.integers(-3, 4, ry.size), 0, h - 1)
    radar = _project(ry, rx, [r_rng, 100.0 * s.radar[np.nonzero(cand)]], r_rng.astype(np.float32), h, w)
    label = s.label
    p = Path(split, weather, tod)
    write_png(out / "frame_camera" / p / f"{stem}_frame_camera.png", rgb)
    write_png(out / "gt_semantic" / p / f"{stem}_gt_labelTrainIds.png", label)
    write_png(out / "projected_to_rgb" / "lidar" / p / f"{stem}_lidar.png", encode_projected(lidar))
    write_png(out / "projected_to_rgb" / "radar" / p / f"{stem}_radar.png", encode_projected(radar))
    write_png(out / "projected_to_rgb" / "event_camera" / p / f"{stem}_event_camera.png", ev8)
    return {
        "split": split, "weather": weather, "time_of_day": tod,
        "ground_condition": "dry" if weather == "clear" else "wet",
        "precipitation_level": "none" if weather in ("clear", "fog") else "light", "precipitation_tag": weather,
        "sun_level": "none" if tod == "night" else "medium", "tunnel": False,
        "path_to_frame_camera": f"frame_camera/{p.as_posix()}/{stem}_frame_camera.png",
        "path_to_lidar": f"lidar/{p.as_posix()}/{stem}_lidar.bin",
        "path_to_radar": f"radar/{p.as_posix()}/{stem}_radar.png",
        "path_to_event_camera": f"event_camera/{p.as_posix()}/{stem}_event_camera.h5",
        "synthetic": True,
    }  # fmt: skip


def write(out: Path, size: int, counts: dict[str, int], seed: int) -> None:
    """Write the whole tree and ``meta.json`` under ``out``; ``counts`` maps split -> number of samples."""
    h, w = size, round(size * 16 / 9)
    meta = {}
    for k, (split, n) in enumerate(counts.items()):
        for i in range(n):
            cell = i % (len(WEATHERS) * len(TIMES))
            weather, tod = WEATHERS[cell // 2], TIMES[cell % 2]
            stem = f"REC{1 + 20 * k + cell:04d}_frame_{i:06d}"
            meta[stem] = write_sample(out, split, weather, tod, stem, h, w, np.random.default_rng([seed, 2, k, i]))
    write_text(out / "meta.json", json.dumps(meta, indent=1, sort_keys=True) + "\n")
