"""Harness overhead: the training loop against a bare forward/backward/AdamW of the same network on the same tensors.

Not a unit test (``testpaths = tests``): ``OMP_NUM_THREADS=1 pytest benchmarks/test_harness_overhead.py -q -s``.
The loop's share is everything but the network: loading and augmenting the batch, the step object, the
schedule, host syncs and logging. Measured as the difference of two ``train`` calls of different lengths
(setup and the final checkpoint cancel out), per iteration, against the bare step on tensors of the same
shape. Budget: at most 10 % over the bare step, at the published teacher network (MiT-B0, embedding 768,
4 modalities) on 128 px crops (``RSBENCH_BENCH_CROP``) with batch 2 (``RSBENCH_BENCH_BATCH``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from rsbench.cards import MethodCard, load_card
from rsbench.losses import create_loss
from rsbench.runs import build_model
from rsbench.training import train
from rsbench.training.schedule import param_groups

MAX_OVERHEAD = 0.10
CROP = int(os.environ.get("RSBENCH_BENCH_CROP", "128"))
BATCH = int(os.environ.get("RSBENCH_BENCH_BATCH", "2"))
SHORT, LONG = 3, 13


def _card(iters: int) -> MethodCard:
    """The teacher's paper network; no validation or checkpoint inside the timed span, data in memory."""
    return load_card("teacher", "paper", {
        "iters": iters, "batch_size": BATCH, "crop": CROP, "scale_min": 1.0, "scale_max": 1.0, "warmup_iters": 1,
        "val_interval": 10**6, "ckpt_interval": 10**6, "cache_data": True,
        "synth": {"size": CROP, "n_train": 4 * BATCH, "n_val": 2, "n_test": 2, "seed": 0}})


def _loop_seconds(tmp: Path, iters: int) -> float:
    t0 = time.perf_counter()
    train(_card(iters), "deliver-synth", tmp / f"run{iters}", progress=False, device="cpu")
    return time.perf_counter() - t0


def _bare_seconds(iters: int) -> float:
    card = _card(iters)
    torch.manual_seed(0)
    model = build_model(card, ("rgb", "depth", "event", "lidar"), 25).train()
    loss_fn = create_loss("ohem_ce", **card.loss_options("ohem_ce"))
    opt = torch.optim.AdamW(param_groups(model, card.weight_decay), lr=card.lr)
    g = torch.Generator().manual_seed(0)
    mods = {m: torch.randn(BATCH, 3, CROP, CROP, generator=g) for m in ("rgb", "depth", "event", "lidar")}
    labels = torch.randint(0, 25, (BATCH, CROP, CROP), generator=g)

    def step() -> None:
        loss = loss_fn(model(mods), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up, as the loop's first iteration
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return time.perf_counter() - t0


def test_loop_costs_at_most_10_percent_over_a_bare_step(benchmark, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RSBENCH_CACHE", str(tmp_path / "cache"))
    _loop_seconds(tmp_path, 1)  # generate the data outside the timings
    n = LONG - SHORT

    def measure() -> tuple[float, float]:
        loop = (_loop_seconds(tmp_path, LONG) - _loop_seconds(tmp_path, SHORT)) / n
        return loop, _bare_seconds(n) / n

    loop, bare = benchmark.pedantic(measure, rounds=1, iterations=1)
    overhead = loop / bare - 1
    benchmark.extra_info.update({"loop_s_per_iter": loop, "bare_s_per_iter": bare, "overhead": overhead,
                                 "crop": CROP, "batch": BATCH})
    print(f"\nloop {loop * 1e3:.0f} ms/iter, bare forward/backward/AdamW {bare * 1e3:.0f} ms/iter: "
          f"overhead {overhead * 100:+.1f} % (budget {MAX_OVERHEAD * 100:.0f} %)")
    assert overhead <= MAX_OVERHEAD
