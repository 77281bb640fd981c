"""Per-sensor corruptions with severities 1..5, as a registry (``corruptions_for``, ``corrupt``).

RGB uses the ImageNet-C definitions from the maintained ``imagecorruptions`` package (optional extra
``rsbench[corruptions]``); depth, LiDAR, events, polarisation and NIR use rsbench's own faults
(``sensors.py``), whose severity tables are data (``severities.yaml``). Every draw comes from a
generator seeded with (protocol seed, sample index, modality, corruption), so results do not depend
on batch size or workers. Severity 0 is the identity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from importlib import resources

import torch
import yaml
from torch import Tensor

from rsbench.corruptions import sensors
from rsbench.corruptions.rgb import COMMON, corrupt_rgb
from rsbench.errors import ConfigError

SENSOR_OF = {"rgb": "rgb", "frame": "rgb", "depth": "depth", "lidar": "lidar", "event": "event",
             "aolp": "polarization", "dolp": "polarization", "nir": "nir"}
"""Modality name -> sensor type."""

_SENSOR_FAULTS: dict[str, tuple[tuple[str, Callable], ...]] = {
    "depth": (("depth_holes", sensors.depth_holes), ("depth_range_noise", sensors.range_noise),
              ("depth_quantization", sensors.quantization)),
    "lidar": (("lidar_sparsify", sensors.lidar_sparsify), ("lidar_range_noise", sensors.range_noise),
              ("lidar_quantization", sensors.quantization)),
    "event": (("event_hot_pixels", sensors.event_hot_pixels), ("event_dropout", sensors.event_dropout),
              ("event_time_shift", sensors.event_time_shift)),
    "polarization": (("sensor_noise", sensors.sensor_noise), ("saturation", sensors.saturation)),
    "nir": (("sensor_noise", sensors.sensor_noise), ("saturation", sensors.saturation)),
}
MAX_SEVERITY = 5


@functools.cache
def severity_table() -> dict[str, list[float]]:
    text = (resources.files("rsbench") / "corruptions" / "severities.yaml").read_text()
    return yaml.safe_load(text)


def corruptions_for(modality: str) -> list[str]:
    """Corruption names that apply to a modality (by its sensor type)."""
    sensor = SENSOR_OF.get(modality)
    if sensor is None:
        raise ConfigError(f"no corruptions are defined for modality {modality!r} (known: {', '.join(SENSOR_OF)})")
    if sensor == "rgb":
        return list(COMMON)
    return [name for name, _ in _SENSOR_FAULTS[sensor]]


def all_corruptions() -> list[str]:
    names = list(COMMON)
    for faults in _SENSOR_FAULTS.values():
        names.extend(n for n, _ in faults if n not in names)
    return names


def corrupt(x: Tensor, ids: Sequence[int], modality: str, name: str, severity: int, seed_of: Callable[[int], int]
            ) -> Tensor:
    """Corrupt a batch ``x [B, C, H, W]`` of one modality; ``seed_of(sample index)`` seeds each sample."""
    if not 0 <= severity <= MAX_SEVERITY:
        raise ConfigError(f"severity must be 0..{MAX_SEVERITY}, got {severity}")
    if name not in corruptions_for(modality):
        raise ConfigError(f"corruption {name!r} does not apply to {modality!r} (choose from "
                          f"{', '.join(corruptions_for(modality))})")
    if severity == 0:
        return x
    if SENSOR_OF[modality] == "rgb":
        return torch.stack([corrupt_rgb(x[b], name, severity, seed_of(i)) for b, i in enumerate(ids)])
    fn = dict(_SENSOR_FAULTS[SENSOR_OF[modality]])[name]
    value = severity_table()[name][severity - 1]
    return torch.stack([fn(x[b], value, torch.Generator().manual_seed(seed_of(i))) for b, i in enumerate(ids)])
