"""RGB corruptions: the ImageNet-C definitions (Hendrycks & Dietterich 2019) from ``imagecorruptions``.

rsbench calls the maintained ``imagecorruptions-imaug`` package (install ``rsbench[corruptions]``);
it runs on uint8 ``[H, W, 3]`` images, so the normalised RGB input is mapped back to uint8, corrupted
and normalised again. Its draws use NumPy's global generator (seeded here per sample) and, for glass
blur, a seed argument.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rsbench.data.base import IMAGENET_MEAN, IMAGENET_STD
from rsbench.errors import ConfigError

COMMON = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
          "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
          "jpeg_compression")
"""The 15 ImageNet-C corruptions (``imagecorruptions.get_corruption_names('common')``)."""


def _library():
    try:
        import imagecorruptions
    except ImportError:
        hint = "pip install 'rsbench[corruptions]'"
        raise ConfigError(f"RGB corruptions need the imagecorruptions package: {hint}") from None
    return imagecorruptions


def corrupt_rgb(x: Tensor, name: str, severity: int, seed: int) -> Tensor:
    """One normalised RGB sample ``[3, H, W]`` through ImageNet-C ``name`` at ``severity`` (1..5)."""
    lib = _library()
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(3, 1, 1).to(x.device)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(3, 1, 1).to(x.device)
    img = ((x * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    # glass blur draws inside numba code from its own ``seed`` argument (None: fresh entropy)
    extra = {"seed": seed % (2**32)} if name == "glass_blur" else {}
    try:
        out = lib.corrupt(img, corruption_name=name, severity=severity, **extra)
    finally:
        np.random.set_state(state)
    y = torch.from_numpy(np.array(out, dtype=np.float32)[..., :3].copy()).to(x.device).permute(2, 0, 1).to(x.dtype)
    if y.shape != x.shape:  # some corruptions round sizes; restore the input's
        y = torch.nn.functional.interpolate(y[None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    return (y / 255 - mean) / std
