"""Uncertainty of reproduced numbers: bootstrap over validation images, and over seeds.

Every evaluation record keeps per-image intersections and unions per class and condition, so an
mIoU (and any summary of per-condition mIoUs, e.g. the EMM average) can be recomputed on a
resample of the images without the model. Intervals are percentile intervals of ``n_boot``
resamples drawn with a seeded NumPy generator: deterministic given the seed. A difference
between two methods is significant when the paired interval (the same resampled images for both)
excludes 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Counts = Mapping[str, tuple[np.ndarray, np.ndarray]]


def miou_from_counts(inter: np.ndarray, union: np.ndarray, convention: str = "nanmean") -> float:
    """mIoU (percent) of summed ``[..., K]`` counts; ``nanmean`` skips classes with an empty union."""
    i, u = np.asarray(inter, dtype=np.float64), np.asarray(union, dtype=np.float64)
    iou = np.divide(i, u, out=np.zeros_like(i), where=u > 0)
    if convention == "nanmean":
        present = u > 0
        return float(100 * iou[present].mean()) if present.any() else float("nan")
    return float(100 * iou.mean())


def _summary_value(counts: Counts, rows: np.ndarray | slice, summary: Callable[[dict[str, float]], float],
                   convention: str) -> float:
    mious = {k: miou_from_counts(i[rows].sum(0), u[rows].sum(0), convention) for k, (i, u) in counts.items()}
    return summary(mious)


def _resampled_summaries(counts: Counts, weights: np.ndarray, summary: Callable, convention: str) -> np.ndarray:
    """``summary`` on every resample at once: ``weights[d, j]`` = how often resample ``d`` drew image ``j``.

    Summed counts are ``weights @ counts`` (integers, exact in float64), so each resample's mIoU equals
    the one of indexing and summing its rows; the summaries take arrays over resamples element-wise.
    """
    mious = {}
    for key, (i, u) in counts.items():
        inter = weights @ np.asarray(i, dtype=np.float64)
        union = weights @ np.asarray(u, dtype=np.float64)
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        if convention == "nanmean":
            present = (union > 0).sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mious[key] = np.where(present > 0, 100 * (iou * (union > 0)).sum(1) / present, np.nan)
        else:
            mious[key] = 100 * iou.mean(1)
    return np.asarray(summary(mious), dtype=np.float64)


def _image_weights(draws: list[np.ndarray], n: int) -> np.ndarray:
    return np.stack([np.bincount(rows, minlength=n) for rows in draws]).astype(np.float64)


def average(mious: dict[str, Any]) -> Any:
    """Mean over conditions; of floats (one value) or of arrays over resamples (element-wise)."""
    mean = np.mean(np.stack([np.asarray(v, dtype=np.float64) for v in mious.values()]), axis=0)
    return float(mean) if mean.ndim == 0 else mean


def bootstrap_interval(counts: Counts, summary: Callable[[dict[str, float]], float] = average,
                       convention: str = "nanmean", n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """(value, low, high) of ``summary`` over conditions, resampling images with replacement."""
    n = next(iter(counts.values()))[0].shape[0]
    value = _summary_value(counts, slice(None), summary, convention)
    rng = np.random.default_rng(seed)
    weights = _image_weights([rng.integers(0, n, n) for _ in range(n_boot)], n)
    draws = _resampled_summaries(counts, weights, summary, convention)
    lo, hi = np.percentile(draws, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return value, float(lo), float(hi)


def paired_difference(a: Counts, b: Counts, summary: Callable[[dict[str, float]], float] = average,
                      convention: str = "nanmean", n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """(a - b, low, high): both resampled with the same images (they must be scored on the same samples)."""
    return paired_difference_runs([a], [b], summary, convention, n_boot, seed, level)


def paired_difference_runs(a: list[Counts], b: list[Counts], summary: Callable[[dict[str, float]], float] = average,
                           convention: str = "nanmean", n_boot: int = 1000, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float, float]:
    """Mean over seed pairs of (a - b), resampling seed pairs and images (the same images for every run).

    ``a[s]`` and ``b[s]`` are the counts of seed ``s`` of two methods on the same samples. With one pair this
    resamples images only; with several, the interval holds both the seed and the image variation.
    """
    if not a or len(a) != len(b):
        raise ValueError("a paired comparison over seeds needs the same seeds for both methods")
    n = next(iter(a[0].values()))[0].shape[0]
    for x in (*a, *b):
        if next(iter(x.values()))[0].shape[0] != n or set(x) != set(a[0]):
            raise ValueError("a paired comparison needs the same samples and conditions")
    k = len(a)
    value = float(np.mean([_summary_value(a[s], slice(None), summary, convention)
                           - _summary_value(b[s], slice(None), summary, convention) for s in range(k)]))
    rng = np.random.default_rng(seed)
    seed_draws, image_draws = [], []
    for _ in range(n_boot):  # the draw order of every earlier version: seeds, then images
        seed_draws.append(rng.integers(0, k, k) if k > 1 else np.zeros(1, dtype=np.int64))
        image_draws.append(rng.integers(0, n, n))
    weights = _image_weights(image_draws, n)
    gaps = np.stack([_resampled_summaries(a[s], weights, summary, convention)
                     - _resampled_summaries(b[s], weights, summary, convention) for s in range(k)], axis=1)
    picks = np.stack([np.bincount(d, minlength=k) for d in seed_draws]).astype(np.float64)  # [n_boot, k]
    draws = (picks * gaps).sum(1) / picks.sum(1)
    lo, hi = np.percentile(draws, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return value, float(lo), float(hi)


def seed_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) over seeds: Student's t interval of the mean."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half
