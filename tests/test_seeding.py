"""Seeds from integers, without Python's ``hash``: the augmentation seeds of earlier runs, written out."""

from __future__ import annotations

import pytest

from rsbench.seeding import mix, tuple_seed


@pytest.mark.parametrize(("values", "seed"), [((0, 0, 0), 360982090), ((3, 5, 7), 1573325281),
                                              ((123, 4, 99999), 1152518994), ((2, 1, 0), 1787611016)])
def test_tuple_seed_repeats_the_seeds_earlier_runs_used(values: tuple[int, ...], seed: int) -> None:
    """Recorded from ``hash((seed, epoch, index)) & 0x7FFFFFFF`` (64-bit CPython), what the loop used before."""
    assert tuple_seed(*values) == seed


def test_tuple_seed_and_mix_separate_orders_and_fit_their_ranges() -> None:
    assert tuple_seed(1, 2, 3) != tuple_seed(3, 2, 1) and 0 <= tuple_seed(10**12, 7, 1) < 2**31
    assert mix(1, 2) != mix(2, 1) and 0 <= mix(2**70, -1) < 2**63
