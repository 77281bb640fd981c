"""Per-sensor faults for depth, LiDAR, events, polarisation and NIR (no library defines these).

Each function takes one sample's modality ``x [C, H, W]`` in rsbench's ``[0, 1]`` sensor range
(these modalities are ``/255`` images), a severity value from ``severities.yaml`` and a seeded
generator, and returns the corrupted sample. The physical motivation is in each docstring.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _rand(x: Tensor, g: torch.Generator) -> Tensor:
    return torch.rand(x.shape, generator=g).to(x.device)


def _valid(x: Tensor) -> Tensor:
    """Pixels with a return (sparse sensors: 0 means no measurement)."""
    return (x > 0).any(dim=0, keepdim=True)


def depth_holes(x: Tensor, fraction: float, g: torch.Generator) -> Tensor:
    """Missing returns: specular, dark or distant surfaces give no depth, in blobs, not single pixels.

    Rectangles of random size are zeroed until about ``fraction`` of the image is covered.
    """
    _, h, w = x.shape
    out = x.clone()
    covered = torch.zeros(h, w, dtype=torch.bool)
    target = fraction * h * w
    while covered.sum() < target:
        bh = int(torch.randint(max(1, h // 16), max(2, h // 4), (1,), generator=g))
        bw = int(torch.randint(max(1, w // 16), max(2, w // 4), (1,), generator=g))
        top = int(torch.randint(0, h - bh + 1, (1,), generator=g))
        left = int(torch.randint(0, w - bw + 1, (1,), generator=g))
        covered[top:top + bh, left:left + bw] = True
    return out.masked_fill(covered.to(x.device)[None], 0.0)


def range_noise(x: Tensor, std: float, g: torch.Generator) -> Tensor:
    """Range noise grows with distance (stereo disparity error, ToF/LiDAR timing jitter): ``x (1 + std N)``.

    Only pixels with a return change; the result stays in [0, 1].
    """
    noise = torch.randn(x.shape, generator=g).to(x.device)
    return torch.where(_valid(x), (x * (1 + std * noise)).clamp(0, 1), x)


def quantization(x: Tensor, levels: float, g: torch.Generator) -> Tensor:
    """Coarse range resolution (cheap sensors, compressed streams): ``levels`` steps left in [0, 1]."""
    n = float(levels) - 1
    return torch.round(x * n) / n


def lidar_sparsify(x: Tensor, fraction: float, g: torch.Generator) -> Tensor:
    """Fewer beams or returns absorbed by rain and fog: a ``fraction`` of the valid returns is lost."""
    drop = (_rand(x[:1], g) < fraction) & _valid(x)
    return x.masked_fill(drop, 0.0)


def event_hot_pixels(x: Tensor, fraction: float, g: torch.Generator) -> Tensor:
    """Hot pixels: defective photoreceptors fire constantly and read as full activity in every window."""
    hot = _rand(x[:1], g) < fraction
    return torch.where(hot, torch.ones_like(x), x)


def event_dropout(x: Tensor, fraction: float, g: torch.Generator) -> Tensor:
    """Bus saturation / refractory losses: a ``fraction`` of the active event pixels is not delivered."""
    drop = (_rand(x[:1], g) < fraction) & _valid(x)
    return x.masked_fill(drop, 0.0)


def event_time_shift(x: Tensor, pixels: float, g: torch.Generator) -> Tensor:
    """A time window misaligned with the other sensors: edges appear displaced by ``pixels``.

    The direction is random per sample; uncovered borders hold no events.
    """
    k = int(pixels)
    angle = float(torch.rand((), generator=g)) * 2 * torch.pi
    dy, dx = round(k * float(torch.sin(torch.tensor(angle)))), round(k * float(torch.cos(torch.tensor(angle))))
    out = torch.zeros_like(x)
    _, h, w = x.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def sensor_noise(x: Tensor, std: float, g: torch.Generator) -> Tensor:
    """Read and shot noise of a polarisation or NIR camera in low light: additive Gaussian, clipped."""
    return (x + std * torch.randn(x.shape, generator=g).to(x.device)).clamp(0, 1)


def saturation(x: Tensor, gain: float, g: torch.Generator) -> Tensor:
    """Over-exposure (sun, headlights, an auto-exposure lag): gain, then clipping at the sensor's full well."""
    return (x * gain).clamp(0, 1)
