"""How the cost grows: evaluation throughput, and step time and memory against image size and modality count.

Not unit tests (``testpaths = tests``): ``OMP_NUM_THREADS=1 pytest benchmarks/test_scaling.py -q -s``.
Published configuration (MiT-B0, embedding 768, the ``paper`` cards), generated data, batch 2 on the
CPU (the card's batch on CUDA). Peak memory of a call after a warm-up one, as in ``_steps.peak_memory_mib``
(CPU: resident-set high-water mark above the resident set before the call, so model, teacher, data and
optimiser state are not counted; activations, gradients and temporaries are; CUDA: tensor allocations).
Each test runs in under about two minutes on one CPU thread. Figures only, no budget (the 1.4x budget of a RobustSeg
step over a moddrop step is held at the published configuration by ``test_student_step.py``).
"""

from __future__ import annotations

import pytest
import torch
from _steps import DELIVER, device, interleaved_medians, make_batch, make_step, peak_memory_mib

from rsbench.cards import load_card
from rsbench.data import create_dataset
from rsbench.evaluation import evaluate
from rsbench.models import create_model

EVAL_IMAGES = 8


def _batch_size(dev: torch.device) -> int:
    return load_card("robustseg", "paper").batch_size if dev.type == "cuda" else 2


@pytest.mark.parametrize("size", [128, 256])
def test_evaluation_throughput(benchmark, size: int) -> None:
    """Full-modality evaluation (``rsbench.evaluation.evaluate``, protocol ``full``), data loading included."""
    dev = device()
    ds = create_dataset("deliver-synth", split="val",
                        synth={"size": size, "n_train": 1, "n_val": EVAL_IMAGES, "n_test": 1, "seed": 0})
    torch.manual_seed(0)
    model = create_model("segformer_mit_b0", modalities=ds.modalities, num_classes=ds.info.num_classes,
                         embed_dim=768).eval().to(dev)
    run = lambda: evaluate(model, ds, "full", batch_size=_batch_size(dev), device=dev)  # noqa: E731
    run()  # warm-up
    peak = peak_memory_mib(run, dev)
    seconds = benchmark.pedantic(lambda: interleaved_medians({"full": run}, 3, dev)["full"], rounds=1, iterations=1)
    ips = EVAL_IMAGES / seconds
    benchmark.extra_info.update({"device": str(dev), "size": size, "images_per_s": ips, "peak_mib": peak})
    print(f"\n{dev} eval {size}px: {ips:.2f} images/s ({seconds:.2f} s for {EVAL_IMAGES}), peak memory "
          f"{peak if peak is None else round(peak)} MiB")
    assert 0.0 <= run().summary["full"] <= 100.0


def _compare(benchmark, label: str, crop: int, modalities: tuple[str, ...], rounds: int) -> None:
    dev = device()
    batch = make_batch(_batch_size(dev), crop, modalities, dev)
    moddrop, _ = make_step("moddrop", "paper", dev, batch, modalities)
    robustseg, _ = make_step("robustseg", "paper", dev, batch, modalities)
    for fn in (moddrop, robustseg):  # warm-up (the optimiser state is allocated here)
        fn()
    peak = {k: peak_memory_mib(fn, dev) for k, fn in (("moddrop", moddrop), ("robustseg", robustseg))}
    med = benchmark.pedantic(lambda: interleaved_medians({"moddrop": moddrop, "robustseg": robustseg}, rounds, dev),
                             rounds=1, iterations=1)
    ratio = med["robustseg"] / med["moddrop"]
    benchmark.extra_info.update({"device": str(dev), "crop": crop, "modalities": len(modalities),
                                 **{f"{k}_s": v for k, v in med.items()}, "ratio": ratio,
                                 **{f"{k}_peak_mib": v for k, v in peak.items()}})
    print(f"\n{dev} {label}: moddrop {med['moddrop'] * 1e3:.0f} ms, robustseg {med['robustseg'] * 1e3:.0f} ms, "
          f"ratio {ratio:.2f}; peak memory " + ", ".join(f"{k} {v:.0f} MiB" for k, v in peak.items() if v is not None))
    assert all(v > 0 for v in med.values())


@pytest.mark.parametrize("crop", [128, 256, 512])
def test_step_cost_by_image_size(benchmark, crop: int) -> None:
    _compare(benchmark, f"crop {crop}, 4 modalities", crop, DELIVER, 3 if crop < 512 else 2)


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_step_cost_by_modality_count(benchmark, count: int) -> None:
    _compare(benchmark, f"crop 256, {count} modalit{'y' if count == 1 else 'ies'}", 256, DELIVER[:count], 3)
