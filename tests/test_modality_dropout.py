"""Per-batch modality dropout sampler: distribution (chi-square), never empty, reproducible."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch
from scipy.stats import chisquare

from rsbench.training.modality_dropout import ModalityDropout, expand_mask, sample_modality_mask

M = 4
N_DRAWS = 8000


def _draw(sampler, n: int = N_DRAWS) -> list[tuple[bool, ...]]:
    return [tuple(bool(v) for v in sampler()) for _ in range(n)]


def _k_pvalue(masks: list[tuple[bool, ...]], m: int) -> float:
    counts = Counter(sum(mask) for mask in masks)
    return chisquare([counts.get(k, 0) for k in range(1, m + 1)]).pvalue


def _subset_pvalues(masks: list[tuple[bool, ...]], m: int) -> dict[int, float]:
    """For each size k with several subsets: p-value that the subsets of size k are equally likely."""
    out = {}
    counts = Counter(masks)
    for k in range(1, m):
        subsets = [tuple(i in c for i in range(m)) for c in itertools.combinations(range(m), k)]
        out[k] = chisquare([counts.get(s, 0) for s in subsets]).pvalue
    return out


@pytest.fixture(scope="module")
def masks() -> list[tuple[bool, ...]]:
    return _draw(ModalityDropout(M, torch.Generator().manual_seed(0)))


def test_k_uniform(masks):
    assert _k_pvalue(masks, M) > 1e-3


def test_subsets_uniform_within_size(masks):
    for k, p in _subset_pvalues(masks, M).items():
        assert p > 1e-3, (k, p)


def test_never_empty(masks):
    assert all(any(mask) for mask in masks)
    assert all(sample_modality_mask(1, torch.Generator().manual_seed(s)).tolist() == [True] for s in range(20))


def test_chisquare_detects_biased_samplers():
    """The checks above can fail: per-modality coin flips (rejecting empty) skew k; first-k skews subsets."""
    g = torch.Generator().manual_seed(1)

    def coin() -> torch.Tensor:
        while True:
            mask = torch.rand(M, generator=g) < 0.5
            if mask.any():
                return mask

    assert _k_pvalue(_draw(coin, 4000), M) < 1e-6

    def first_k() -> torch.Tensor:
        k = int(torch.randint(1, M + 1, (1,), generator=g))
        return torch.arange(M) < k

    assert min(_subset_pvalues(_draw(first_k, 4000), M).values()) < 1e-6


def test_reproducible_and_expand():
    a = [sample_modality_mask(M, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(a[0], a[1]) and a[0].dtype == torch.bool and a[0].shape == (M,)
    e = expand_mask(a[0], 3)
    assert e.shape == (3, M) and all(torch.equal(row, a[0]) for row in e)
    sampler = ModalityDropout(M, torch.Generator().manual_seed(7))
    assert torch.equal(sampler(5)[0], a[0])
    with pytest.raises(ValueError):
        sample_modality_mask(0)
