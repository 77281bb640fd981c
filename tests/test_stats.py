"""Bootstrap and seed intervals on constructed cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from rsbench.leaderboard.stats import (
    bootstrap_interval,
    miou_from_counts,
    paired_difference,
    seed_interval,
)


def test_miou_from_counts_by_hand() -> None:
    inter = np.array([[5, 0, 0], [5, 2, 0]])
    union = np.array([[10, 4, 0], [10, 4, 0]])
    # class 0: 10/20, class 1: 2/8, class 2 absent
    assert miou_from_counts(inter.sum(0), union.sum(0)) == pytest.approx(100 * (0.5 + 0.25) / 2)
    assert miou_from_counts(inter.sum(0), union.sum(0), "zero-absent") == pytest.approx(100 * 0.75 / 3)


def test_identical_images_give_a_zero_width_interval() -> None:
    counts = {"full": (np.tile([[3, 1]], (20, 1)), np.tile([[4, 2]], (20, 1)))}
    value, lo, hi = bootstrap_interval(counts, n_boot=200)
    assert value == lo == hi == pytest.approx(100 * (0.75 + 0.5) / 2)


def test_interval_covers_and_shrinks_with_more_images() -> None:
    rng = np.random.default_rng(1)

    def counts(n):  # per-image IoU of the one class ~ U(0.3, 0.7): the population mIoU is 50
        union = np.full((n, 1), 1000)
        return {"full": ((rng.uniform(0.3, 0.7, (n, 1)) * 1000).astype(int), union)}

    small, large = counts(30), counts(600)
    v1, lo1, hi1 = bootstrap_interval(small, n_boot=400, seed=3)
    v2, lo2, hi2 = bootstrap_interval(large, n_boot=400, seed=3)
    assert lo1 < 50 < hi1 and lo2 < 50 < hi2
    assert hi2 - lo2 < (hi1 - lo1) / 2  # ~ 1/sqrt(n): 20x the images, ~4.5x narrower
    assert bootstrap_interval(small, n_boot=400, seed=3) == (v1, lo1, hi1)  # deterministic given the seed


def test_paired_difference_significant_only_when_it_should_be() -> None:
    rng = np.random.default_rng(2)
    n = 200
    base = (rng.uniform(0.2, 0.8, (n, 1)) * 1000).astype(int)
    union = np.full((n, 1), 1000)
    better = {"full": (base + 30, union)}  # +3 mIoU on every image: tiny variance of the paired difference
    same = {"full": (base.copy(), union)}
    diff, lo, hi = paired_difference(better, same, n_boot=300)
    assert diff == pytest.approx(3.0) and lo > 0
    noise = {"full": (base + rng.integers(-40, 41, (n, 1)), union)}
    d2, lo2, hi2 = paired_difference(noise, same, n_boot=300)
    assert lo2 < 0 < hi2


def test_seed_interval_is_the_t_interval() -> None:
    mean, lo, hi = seed_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))


def test_all_resamples_at_once_equal_indexing_each_resample() -> None:
    """The vectorised bootstrap (weights @ counts) gives each resample's summary as summing its rows does."""
    from rsbench.leaderboard.stats import _image_weights, _resampled_summaries, _summary_value, average

    rng = np.random.default_rng(3)
    counts = {c: (rng.integers(0, 50, (12, 5)), rng.integers(50, 100, (12, 5))) for c in ("a", "b", "c")}
    counts["a"][1][:, 4] = 0  # a class absent from every image: skipped by nanmean
    draws = [rng.integers(0, 12, 12) for _ in range(20)]
    for convention in ("nanmean", "mean"):
        at_once = _resampled_summaries(counts, _image_weights(draws, 12), average, convention)
        one_by_one = [_summary_value(counts, rows, average, convention) for rows in draws]
        np.testing.assert_allclose(at_once, one_by_one, rtol=1e-12)
