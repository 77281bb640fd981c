"""Paired augmentation: one geometric draw applied to every modality and the label.

Published recipe (CMNeXt/RobustSeg): random resized crop (scale 0.5-2.0; images padded
with 0, the label with 255), horizontal flip, and colour jitter and Gaussian blur on the
RGB modality only. Randomness comes from an explicit ``torch.Generator`` seeded per
(seed, epoch, sample), so an interrupted run resumes with exactly the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rsbench.data.base import IGNORE_INDEX, Sample
from rsbench.seeding import tuple_seed

RGB_MODALITIES = ("rgb", "frame")
"""Modality names that hold the colour camera (normalised with ImageNet mean/std)."""
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def resize_sample(sample: Sample, size: tuple[int, int]) -> Sample:
    """Resize modalities bilinearly and the label with nearest neighbours to ``size`` (H, W)."""
    mods = {
        k: F.interpolate(v[None], size=size, mode="bilinear", align_corners=False)[0]
        for k, v in sample["modalities"].items()
    }
    label = F.interpolate(sample["label"][None, None].float(), size=size, mode="nearest")[0, 0].long()
    return {**sample, "modalities": mods, "label": label}


def _jitter_rgb(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness/contrast/saturation jitter in [0, 1] space, for a normalised RGB tensor."""
    img = x * _STD + _MEAN
    img = img * _uniform(gen, 0.6, 1.4)
    mean = img.mean()
    img = (img - mean) * _uniform(gen, 0.6, 1.4) + mean
    gray = img.mean(dim=0, keepdim=True)
    img = (img - gray) * _uniform(gen, 0.6, 1.4) + gray
    return (img.clamp(0, 1) - _MEAN) / _STD


def _blur(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """3x3 Gaussian blur with sigma drawn from [0.1, 2.0] (reflect padding)."""
    sigma = _uniform(gen, 0.1, 2.0)
    k = torch.exp(-torch.tensor([-1.0, 0.0, 1.0]) ** 2 / (2 * sigma**2))
    k = k / k.sum()
    kernel = (k[:, None] * k[None, :]).expand(x.shape[0], 1, 3, 3)
    return F.conv2d(F.pad(x[None], (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[0])[0]


@dataclass(frozen=True)
class PairedAugment:
    """Training augmentation; ``crop`` is the output side (square)."""

    crop: int
    scale_min: float = 0.5
    scale_max: float = 2.0
    flip_p: float = 0.5
    jitter_p: float = 0.2
    blur_p: float = 0.2

    def __call__(self, sample: Sample, gen: torch.Generator) -> Sample:
        h, w = sample["label"].shape
        scale = _uniform(gen, self.scale_min, self.scale_max) * self.crop / min(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        sample = resize_sample(sample, size)
        pad_h, pad_w = max(0, self.crop - size[0]), max(0, self.crop - size[1])
        top = int(torch.randint(0, size[0] + pad_h - self.crop + 1, (), generator=gen))
        left = int(torch.randint(0, size[1] + pad_w - self.crop + 1, (), generator=gen))
        flip = float(torch.rand((), generator=gen)) < self.flip_p

        def geo(x: torch.Tensor, fill: float) -> torch.Tensor:
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), value=fill)
            x = x[..., top : top + self.crop, left : left + self.crop]
            return x.flip(-1) if flip else x

        mods = {}
        for name, x in sample["modalities"].items():
            x = geo(x, 0.0)
            if name in RGB_MODALITIES:
                if float(torch.rand((), generator=gen)) < self.jitter_p:
                    x = _jitter_rgb(x, gen)
                if float(torch.rand((), generator=gen)) < self.blur_p:
                    x = _blur(x, gen)
            mods[name] = x.contiguous()
        label = geo(sample["label"], IGNORE_INDEX).contiguous()
        return {**sample, "modalities": mods, "label": label}


@dataclass(frozen=True)
class EvalResize:
    """Evaluation resize: short side to ``size``, long side rounded up to a multiple of 32 (published)."""

    size: int

    def __call__(self, sample: Sample) -> Sample:
        h, w = sample["label"].shape
        scale = self.size / min(h, w)
        out = (-(-round(h * scale) // 32) * 32, -(-round(w * scale) // 32) * 32)
        return sample if out == (h, w) else resize_sample(sample, out)


class InMemory(Dataset):
    """Keeps every decoded sample after its first load: for small (generated) sets read many times."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Sample:
        if index not in self._cache:
            self._cache[index] = self.dataset[index]
        return self._cache[index]


class SeededAugmented(Dataset):
    """Wraps a dataset with an augmentation whose randomness depends only on (seed, epoch, index).

    Items are addressed by ``(index, epoch)`` pairs (``rsbench.data.sampler.EpochBatches``): the
    epoch comes with the request, so DataLoader workers and ranks draw the same as one process.
    """

    def __init__(self, dataset: Dataset, augment: PairedAugment, seed: int) -> None:
        self.dataset, self.augment, self.seed = dataset, augment, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        index, epoch = key
        gen = torch.Generator().manual_seed(tuple_seed(self.seed, epoch, index))
        return self.augment(self.dataset[index], gen)


def collate(samples: Sequence[Sample]) -> Sample:
    """Stack samples into a batch: modalities ``{name: [B,3,H,W]}``, label ``[B,H,W]``, meta as lists."""
    return {
        "modalities": {k: torch.stack([s["modalities"][k] for s in samples]) for k in samples[0]["modalities"]},
        "label": torch.stack([s["label"] for s in samples]),
        "meta": {k: [s["meta"][k] for s in samples] for k in samples[0]["meta"]},
    }
