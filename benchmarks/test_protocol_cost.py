"""Cost of EMM over all 15 subsets against a plain full-modality evaluation (the folded path).

Not a unit test (``testpaths = tests``): ``pytest benchmarks/test_protocol_cost.py -q -s``. MiT-B0
with the 768-wide head, DELIVER's 4 modalities, generated val images at 128 and 256 px; both
evaluations run on the same data with the same metric bank updates, timed in one run, median of 3
rounds. The budget: EMM costs at most 1.5x the full evaluation (the naive path, one forward per
subset, costs about 15x; measured at 128 px). ``RSBENCH_BENCH_NAIVE=0`` skips the naive timing.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest
import torch

from rsbench.data import create_dataset
from rsbench.evaluation import evaluate
from rsbench.models import create_model

MAX_RATIO = 1.5


def _time(fn, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@pytest.mark.parametrize("size", [128, 256])
def test_emm_costs_at_most_1_5x_a_full_evaluation(benchmark, size: int) -> None:
    ds = create_dataset("deliver-synth", split="val",
                        synth={"size": size, "n_train": 1, "n_val": 4, "n_test": 1, "seed": 0})
    torch.manual_seed(0)
    model = create_model("segformer_mit_b0", modalities=ds.modalities, num_classes=ds.info.num_classes,
                         embed_dim=768).eval()
    full = lambda: evaluate(model, ds, "full", batch_size=2)  # noqa: E731
    emm = lambda: evaluate(model, ds, "emm", batch_size=2)  # noqa: E731
    full(), emm()  # warm-up
    t_full, t_emm = _time(full), _time(emm)
    benchmark.pedantic(emm, rounds=1, iterations=1)
    info = {"size": size, "full_s": t_full, "emm_s": t_emm, "ratio": t_emm / t_full}
    if size == 128 and os.environ.get("RSBENCH_BENCH_NAIVE", "1") != "0":
        info["naive_ratio"] = _time(lambda: evaluate(model, ds, "emm", batch_size=2, cache=False), 1) / t_full
    benchmark.extra_info.update(info)
    print(f"\n{size}px: full {t_full:.2f} s, EMM (15 subsets) {t_emm:.2f} s, ratio {t_emm / t_full:.2f}"
          + (f", naive {info['naive_ratio']:.1f}x" if "naive_ratio" in info else ""))
    assert t_emm / t_full <= MAX_RATIO
