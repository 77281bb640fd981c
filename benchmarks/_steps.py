"""Shared pieces of the step benchmarks: one training step as the loop runs it, timing, peak memory.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors only); on the CPU the process's
resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``; Linux, glibc) during
the call, minus the resident set before it, after ``malloc_trim`` has handed the freed heap back to the
system (else memory freed by earlier calls is reused unseen and the figure reads near zero).
"""

from __future__ import annotations

import ctypes
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from rsbench.cards import load_card
from rsbench.runs import build_model
from rsbench.training import TrainStep, build_losses
from rsbench.training.schedule import param_groups
from rsbench.training.step import StudentForward

DELIVER = ("rgb", "depth", "event", "lidar")
NUM_CLASSES = 25


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def make_batch(batch: int, crop: int, modalities: Sequence[str], dev: torch.device) -> dict:
    """Generated inputs and labels, every modality kept (the most distillation pairs)."""
    g = torch.Generator().manual_seed(0)
    return {
        "mods": {m: torch.randn(batch, 3, crop, crop, generator=g).to(dev) for m in modalities},
        "labels": torch.randint(0, NUM_CLASSES, (batch, crop, crop), generator=g).to(dev),
        "present": torch.ones(batch, len(modalities), dtype=torch.bool, device=dev),
    }


def make_step(name: str, profile: str, dev: torch.device, batch: dict,
              modalities: Sequence[str] = DELIVER) -> tuple[Callable[[], float], TrainStep]:
    """One training step of the card ``name`` (as ``rsbench.training.loop`` runs it), as a closure."""
    card = load_card(name, profile)
    torch.manual_seed(0)
    student = build_model(card, tuple(modalities), NUM_CLASSES).to(dev).train()
    teacher = None
    if card.stage == "student":  # as the loop loads it: eval mode, frozen
        teacher = build_model(card, tuple(modalities), NUM_CLASSES).to(dev).eval().requires_grad_(False)
    step = TrainStep(StudentForward(student), teacher, build_losses(card, NUM_CLASSES), card.weights, fill=card.fill,
                     modality_dropout=card.modality_dropout, num_modalities=len(modalities), seed=0)
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
        sync(dev)
        return float(out["loss"].detach())

    return run, step


def timed(fn: Callable[[], object], dev: torch.device) -> float:
    sync(dev)
    t0 = time.perf_counter()
    fn()
    sync(dev)
    return time.perf_counter() - t0


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int, dev: torch.device) -> dict[str, float]:
    """Median seconds of each function over ``rounds`` rounds that alternate between them (a load change hits all)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(timed(fn, dev))
    return {k: statistics.median(v) for k, v in times.items()}


def _status_kib(key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def peak_memory_mib(fn: Callable[[], object], dev: torch.device) -> float | None:
    """Peak memory of one call above what was in use before it, in MiB (see the module doc); None if unmeasurable."""
    if dev.type == "cuda":
        sync(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        fn()
        sync(dev)
        return (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        base = _status_kib("VmRSS")
        fn()
        return (_status_kib("VmHWM") - base) / 1024
    except (OSError, AttributeError):
        return None
