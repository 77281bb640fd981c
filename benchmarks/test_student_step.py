"""Cost of one RobustSeg student step (teacher forward + KD + HPDM + RRM) against a plain moddrop step.

Not a unit test (``testpaths = tests``): ``OMP_NUM_THREADS=1 pytest benchmarks/test_student_step.py -q -s``
(pytest-benchmark). Both steps run the training step of ``rsbench.training`` (``TrainStep``, AdamW, the
loop's backward) on the same batch with the same kept modalities (all of them: the most distillation
pairs). The budget: a RobustSeg step costs at most 1.4x a moddrop step at the published configuration
(``paper`` profile: MiT-B0, embedding 768, crop 256; on CPU with batch 2 so that it runs in about a
minute). The rounds of the two steps alternate, so a change in the machine's load hits both alike;
the ratio is of the medians. ``RSBENCH_BENCH_PROFILE`` picks another profile and ``RSBENCH_BENCH_BATCH``
another batch size. Also printed: the frozen teacher's forward alone, as a share of a moddrop step.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import pytest
import torch

from rsbench.cards import load_card
from rsbench.runs import build_model
from rsbench.training import TrainStep, build_losses
from rsbench.training.schedule import param_groups
from rsbench.training.step import StudentForward

MODALITIES = ("rgb", "depth", "event", "lidar")  # DELIVER
NUM_CLASSES = 25
MAX_RATIO = 1.4


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def make_step(name: str, profile: str, dev: torch.device, batch: dict) -> tuple[Callable[[], float], TrainStep]:
    """One training step of the card ``name`` (as ``rsbench.training.loop`` runs it), as a closure."""
    card = load_card(name, profile)
    torch.manual_seed(0)
    student = build_model(card, MODALITIES, NUM_CLASSES).to(dev).train()
    teacher = None
    if card.stage == "student":  # as the loop loads it: eval mode, frozen
        teacher = build_model(card, MODALITIES, NUM_CLASSES).to(dev).eval().requires_grad_(False)
    step = TrainStep(StudentForward(student), teacher, build_losses(card, NUM_CLASSES), card.weights, fill=card.fill,
                     modality_dropout=card.modality_dropout, num_modalities=len(MODALITIES), seed=0)
    opt = torch.optim.AdamW(param_groups(student, card.weight_decay), lr=card.lr)
    use_amp = card.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    mods, labels, present = batch["mods"], batch["labels"], batch["present"]

    def run() -> float:
        with torch.autocast(dev.type, enabled=use_amp):
            out = step(mods, labels, present)
        opt.zero_grad(set_to_none=True)
        scaler.scale(out["loss"]).backward()
        scaler.step(opt)
        scaler.update()
        _sync(dev)
        return float(out["loss"].detach())

    return run, step


@pytest.fixture(scope="module")
def setting() -> dict:
    dev = _device()
    profile = os.environ.get("RSBENCH_BENCH_PROFILE", "paper")
    card = load_card("robustseg", profile)
    b = int(os.environ.get("RSBENCH_BENCH_BATCH", card.batch_size if dev.type == "cuda" else 2))
    g = torch.Generator().manual_seed(0)
    mods = {m: torch.randn(b, 3, card.crop, card.crop, generator=g).to(dev) for m in MODALITIES}
    labels = torch.randint(0, NUM_CLASSES, (b, card.crop, card.crop), generator=g).to(dev)
    present = torch.ones(b, len(MODALITIES), dtype=torch.bool, device=dev)
    return {"dev": dev, "profile": profile, "batch": {"mods": mods, "labels": labels, "present": present}, "b": b}


def _timed(fn: Callable[[], object], dev: torch.device) -> float:
    _sync(dev)
    t0 = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t0


def test_robustseg_step_at_most_1_4x_a_moddrop_step(benchmark, setting: dict) -> None:
    dev, batch = setting["dev"], setting["batch"]
    moddrop, _ = make_step("moddrop", setting["profile"], dev, batch)
    robustseg, rs_step = make_step("robustseg", setting["profile"], dev, batch)

    def teacher_forward() -> None:
        with torch.no_grad():
            rs_step.teacher.forward_features(batch["mods"])

    for fn in (moddrop, robustseg, moddrop, robustseg):  # warm-up (allocator, cuDNN autotune)
        fn()
    rounds = 10 if dev.type == "cuda" else 5
    times: dict[str, list[float]] = {"moddrop": [], "robustseg": [], "teacher": []}
    for _ in range(rounds):
        times["moddrop"].append(_timed(moddrop, dev))
        times["robustseg"].append(_timed(robustseg, dev))
        times["teacher"].append(_timed(teacher_forward, dev))
    med = {k: statistics.median(v) for k, v in times.items()}
    loss = benchmark.pedantic(robustseg, rounds=1, iterations=1)
    ratio = med["robustseg"] / med["moddrop"]
    benchmark.extra_info.update({"device": str(dev), "profile": setting["profile"], "batch": setting["b"],
                                 **{f"{k}_s": v for k, v in med.items()}, "ratio": ratio,
                                 "teacher_share": med["teacher"] / med["moddrop"]})
    print(f"\n{dev} {setting['profile']} batch {setting['b']}: moddrop {med['moddrop'] * 1e3:.0f} ms, "
          f"robustseg {med['robustseg'] * 1e3:.0f} ms, ratio {ratio:.2f}; teacher forward "
          f"{med['teacher'] * 1e3:.0f} ms ({med['teacher'] / med['moddrop']:.2f}x a moddrop step)")
    assert torch.isfinite(torch.tensor(loss))
    assert ratio <= MAX_RATIO, f"a RobustSeg step costs {ratio:.2f}x a moddrop step (budget {MAX_RATIO}x)"
