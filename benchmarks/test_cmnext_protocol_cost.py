"""Cost of EMM over all 15 subsets against one full evaluation for CMNeXt, a model that mixes modalities.

Not a unit test (``testpaths = tests``): ``OMP_NUM_THREADS=1 pytest benchmarks/test_cmnext_protocol_cost.py -q -s``.
CMNeXt declares ``separable = False`` (its Self-Query Hub and rectification mix the modalities inside the
encoder), so the engine runs one forward per condition: EMM costs about 15 full evaluations, the ideal
ratio being 15 (the shared-encoder SegFormer of ``test_protocol_cost.py`` folds its head and costs ~1.1x).

Setting: ``cmnext_mit_b0`` (head 256), DELIVER's 4 modalities, generated ``deliver-synth`` val images,
8 at 128 px and 4 at 256 px (few images, so that the file runs in about 3.5 minutes on one thread), batch 4,
one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``). ``full``, ``emm`` (fill zero) and the full
evaluation's forwards alone (on loaded batches) alternate over 5 rounds after a warm-up; the ratio is of the
medians (the ratio of the minima is printed too).

Also measured, by timing hooks on one batch of 4 (pre-hook on the first module of a span, post-hook on its
last; median over 11 forwards): the share of a forward spent in work that does not depend on the other
modalities, so could be computed once per batch and reused by the 15 conditions: (a) the RGB stage 1
(``backbone.patch_embed1`` + ``block1`` + ``norm1``, before the first rectification; its input is the clean
RGB or zeros), (b) the auxiliary stage-1 embedding (``backbone.extra_downsample_layers[0]``: the shared 7x7
conv and each modality's LayerNorm; each input is the clean modality or zeros); also (c) the stage-1 hub,
whose per-modality scoring precedes its max. With a share f cached (the clean maps once per batch, the
zero-input maps image-independent), a batch costs 15 (1 - f) + f forwards instead of 15.

Measured on the 2-core CPU machine (2026-12, one thread, shared with other test runs: load 4-5), 4 runs:

    128 px: full 0.06-0.08 s/image, EMM 0.8-1.2 s/image, ratio 13.0-15.1 (ideal 15)
    256 px: full 0.19-0.34 s/image, EMM 2.9-4.7 s/image, ratio 13.6-19.9 (ideal 15; one EMM round
            is ~15 s against ~1 s for full, so the load hits them unevenly)
    shareable per forward: (a) 4.6-8.4 % at 128 px, 5.1-6.0 % at 256 px; (b) 1.1-3.6 % and 1.3-1.4 %;
            (c) 0.4-0.5 %. Timing the pieces alone (``forward_stage(1, rgb)``, the embedding on 3 maps)
            against a whole forward gives (a) 3.5 % / 5.3 %, (b) 0.8 % / 1.1 %.

So a + b is about 6-9 % of a forward: cached, EMM would go from 15 to about 13.7-14.1 forwards per batch
(~7 % less). The time goes to the auxiliary branch's Pooling Mixer blocks (7x7 depthwise convs, 3/7/11
average pools) and the fusion modules after the first mixing, which cannot be shared. Whether 7 % pays for
a cache in the model is a judgement call; it is not implemented here.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from _steps import DELIVER, timed

from rsbench.data import create_dataset
from rsbench.data.transforms import collate
from rsbench.evaluation import evaluate
from rsbench.models import create_model

IMAGES = {128: 8, 256: 4}
BATCH = 4
ROUNDS = 5
SUBSETS = 2 ** len(DELIVER) - 1


def _dataset(size: int):
    return create_dataset("deliver-synth", split="val",
                          synth={"size": size, "n_train": 1, "n_val": IMAGES[size], "n_test": 1, "seed": 0})


def _model(ds) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("cmnext_mit_b0", modalities=ds.modalities, num_classes=ds.info.num_classes).eval()


class _Spans:
    """Wall time from a pre-hook on one module to a post-hook on another (the two bracket a sequential span)."""

    def __init__(self) -> None:
        self.starts: dict[str, float] = {}
        self.total: dict[str, float] = {}
        self.handles: list = []

    def add(self, name: str, first: torch.nn.Module, last: torch.nn.Module) -> None:
        def start(*_):
            self.starts[name] = time.perf_counter()

        def stop(*_):
            self.total[name] = self.total.get(name, 0.0) + time.perf_counter() - self.starts.pop(name)

        self.handles += [first.register_forward_pre_hook(start), last.register_forward_hook(stop)]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def shareable_fractions(model: torch.nn.Module, size: int, repeats: int = 11) -> dict[str, float]:
    """Median shares of one forward (batch 4, all present): (a) RGB stage 1, (b) aux stage-1 embedding, (c) the
    stage-1 hub (its per-modality scoring, which precedes its max, and the max itself)."""
    bb = model.backbone
    g = torch.Generator().manual_seed(0)
    mods = {m: torch.randn(BATCH, 3, size, size, generator=g) for m in model.modalities}
    shares: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    with torch.no_grad():
        model(mods)  # warm-up
        for _ in range(repeats):
            spans = _Spans()
            spans.add("forward", model, model)
            spans.add("a", bb.patch_embed1, bb.norm1)
            spans.add("b", bb.extra_downsample_layers[0], bb.extra_downsample_layers[0])
            spans.add("c", bb.extra_score_predictor[0], bb.extra_score_predictor[0])
            try:
                model(mods)
            finally:
                spans.remove()
            for k in shares:
                shares[k].append(spans.total[k] / spans.total["forward"])
    return {k: statistics.median(v) for k, v in shares.items()}


@pytest.mark.parametrize("size", [128, 256])
def test_cmnext_emm_costs_one_forward_per_subset(benchmark, size: int) -> None:
    torch.set_num_threads(1)
    ds = _dataset(size)
    model = _model(ds)
    full = lambda: evaluate(model, ds, "full", batch_size=BATCH)  # noqa: E731
    emm = lambda: evaluate(model, ds, "emm", batch_size=BATCH)  # noqa: E731
    batches = [collate([ds[i] for i in range(j, min(j + BATCH, len(ds)))]) for j in range(0, len(ds), BATCH)]

    def forwards() -> None:  # the full evaluation's model calls alone, on loaded batches
        with torch.no_grad():
            for b in batches:
                model(b["modalities"])

    full(), emm()  # warm-up
    times: dict[str, list[float]] = {"full": [], "emm": [], "forward": []}
    for _ in range(ROUNDS):  # as _steps.interleaved_medians, keeping every round (the minima are printed too)
        for k, fn in (("full", full), ("emm", emm), ("forward", forwards)):
            times[k].append(timed(fn, torch.device("cpu")))
    t = {k: statistics.median(v) for k, v in times.items()}
    benchmark.pedantic(full, rounds=1, iterations=1)
    share = shareable_fractions(model, size)
    f = share["a"] + share["b"]
    n = IMAGES[size]
    ratio = t["emm"] / t["full"]
    min_ratio = min(times["emm"]) / min(times["full"])
    per_forward = SUBSETS * (1 - f) + f  # forwards' worth of work per batch with the shareable part cached
    # end to end: EMM less the shareable work of 14 of its 15 forwards, over the full evaluation
    cached = (t["emm"] - (SUBSETS - 1) * f * t["forward"]) / t["full"]
    info = {"size": size, "images": n, "full_s_per_image": t["full"] / n, "emm_s_per_image": t["emm"] / n,
            "forward_s_per_image": t["forward"] / n, "ratio": ratio, "min_ratio": min_ratio, "ideal_ratio": SUBSETS,
            "share_rgb_stage1": share["a"], "share_aux_embed1": share["b"], "share_hub1": share["c"],
            "cached_forwards_per_batch": per_forward, "cached_ratio_estimate": cached}
    benchmark.extra_info.update(info)
    print(f"\nCMNeXt-B0 {size}px ({n} images, batch {BATCH}, {torch.get_num_threads()} thread): "
          f"full {t['full'] / n:.3f} s/image (its forwards alone {t['forward'] / n:.3f}), "
          f"EMM ({SUBSETS} subsets) {t['emm'] / n:.3f} s/image, ratio {ratio:.2f} (ideal {SUBSETS})"
          f"\n  shareable per forward: (a) RGB stage 1 {100 * share['a']:.1f} %, (b) aux stage-1 embedding "
          f"{100 * share['b']:.1f} %, together {100 * f:.1f} % -> with a per-batch cache {per_forward:.1f} "
          f"forwards per batch instead of {SUBSETS}, EMM about {cached:.1f}x a full evaluation"
          f"\n  also per-modality before the hub's max: (c) stage-1 hub {100 * share['c']:.1f} % (with a+b: "
          f"{100 * (f + share['c']):.1f} %); ratio of the {ROUNDS} rounds' minima {min_ratio:.2f}")
    assert ratio > 1.0
