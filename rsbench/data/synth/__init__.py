"""Procedural look-alikes of DELIVER, MUSES and MCubeS, written in the real on-disk layouts.

``synthesize(base, out, size, n_train, n_val, n_test, seed)`` writes a whole tree that the
real loaders read unchanged (DATASETS.md sections 1-4; file formats in each writer's
docstring). Every sample is one procedural 2.5D street/material scene (:mod:`.scene`)
rendered into the dataset's sensors, so that each sensor misses something another sees:

- classes with the same colour and texture in RGB that differ only in geometry (road vs
  kerb-raised sidewalk), in motion (moving car vs parked look-alike: events), in LiDAR
  intensity (MUSES car vs truck) or in material (MCubeS grass vs artificial turf in NIR,
  asphalt vs water and concrete vs metal in polarisation);
- classes that only RGB separates (road vs terrain and building vs vegetation share their
  geometry; road lines are flat paint);
- adverse conditions that degrade RGB (night: dark + noise; fog: grey by depth; rain/snow:
  streaks + blur; over/under-exposure; motion blur), sparse LiDAR (scan lines with dropout,
  DELIVER ``lidarjitter`` displaces points, snow/fog add clutter), events from moving edges
  plus noise (half resolution in DELIVER ``eventlowres``).

Which modality shows which class (its signature is unique there; ``visibility_table(base)``
computes it from the class tables):

DELIVER (rgb, depth = hha, event, lidar)::

    Building    rgb
    Pedestrian  rgb depth event lidar
    Pole        rgb depth lidar
    RoadLine    rgb
    Road        -
    SideWalk    depth lidar
    Vegetation  rgb
    Cars        event
    Sky         rgb depth lidar
    Static      -
    Terrain     rgb

MUSES (frame, event, lidar; radar optional)::

    road        -
    sidewalk    lidar
    building    frame
    pole        frame lidar radar
    vegetation  frame
    terrain     frame
    sky         frame lidar radar
    person      frame event lidar radar
    car         event lidar
    truck       lidar

MCubeS (rgb, aolp, dolp, nir)::

    asphalt     nir
    concrete    -
    metal       dolp
    glass       rgb dolp
    plastic     nir
    brick       rgb
    grass       nir
    water       aolp dolp nir
    human       rgb nir
    sky         rgb aolp dolp

A "-" class is still recognised by fusion: it is the class left when the others are ruled out
(Road = grey, flat, static and not raised). Defaults are small (64 px, 60/20/20 samples) so a
default set is generated in seconds; the same seed gives byte-identical files.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from types import ModuleType
from typing import Any

from rsbench.errors import ConfigError

__all__ = ["WRITERS", "synth_defaults", "synthesize", "visibility_table"]

WRITERS: dict[str, str] = {
    "deliver": "rsbench.data.synth.deliver",
    "muses": "rsbench.data.synth.muses",
    "mcubes": "rsbench.data.synth.mcubes",
}
"""Dataset base name -> writer module (``write(out, size, counts, seed)``, ``visibility()``)."""

_DEFAULTS = {"size": 64, "n_train": 60, "n_val": 20, "n_test": 20, "seed": 0}


def _writer(base: str) -> ModuleType:
    import importlib

    if base not in WRITERS:
        raise ConfigError(f"no generator for dataset {base!r} (choose from {', '.join(WRITERS)})")
    return importlib.import_module(WRITERS[base])


def synth_defaults(base: str) -> dict[str, Any]:
    """Default settings for ``base``: ``size`` (image height, px), ``n_train``, ``n_val``, ``n_test``, ``seed``."""
    _writer(base)
    return dict(_DEFAULTS)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"synth: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def synthesize(
    base: str,
    out: str | Path,
    size: int = 64,
    n_train: int = 60,
    n_val: int = 20,
    n_test: int = 20,
    seed: int = 0,
) -> None:
    """Write a generated ``base`` dataset under ``out`` (created if missing).

    Args:
        base: ``deliver``, ``muses`` or ``mcubes``.
        out: target folder; its path must not contain condition words or ``/img`` only for the
            published loaders (rsbench's loaders parse paths relative to the root).
        size: image height in pixels, a multiple of 8 and >= 32 (DELIVER ``size x size``,
            MUSES ``size x round(size * 16 / 9)``, MCubeS ``size x (192 + size)``); multiple of 8
            so that half-size ``eventlowres`` events and strided models divide it exactly.
        n_train, n_val, n_test: samples per split (>= 1), spread over the conditions.
        seed: >= 0; each sample draws from ``numpy.random.default_rng([seed, dataset, split, index])``.
    """
    writer = _writer(base)
    size = _check_int("size", size, 32)
    if size % 8:
        raise ConfigError(f"synth: size must be a multiple of 8, got {size}")
    counts = {s: _check_int(f"n_{s}", n, 1) for s, n in (("train", n_train), ("val", n_val), ("test", n_test))}
    seed = _check_int("seed", seed, 0)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"synth: output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    writer.write(out, size, counts, seed)


def visibility_table(base: str) -> list[tuple[str, tuple[str, ...]]]:
    """``[(class name, modalities that show it)]`` for ``base``, in class-id order (see the module docstring)."""
    return _writer(base).visibility()
