"""The one training loop, for every method and stage (nanoGPT's habit: read it top to bottom).

setup -> data -> model (and frozen teacher for students) -> TrainStep -> optimiser -> loop:
    batch -> step (dropout, forward, weighted losses) -> backward -> optimiser -> schedule
    -> at sync points: log, NaN check, validation, atomic checkpoint.
Methods differ by their cards (losses, weights, dropout), never by copies of this loop.

Determinism and resume: the batch order depends only on (seed, epoch), each sample's augmentation
on (seed, epoch, index), and every RNG state is saved in each checkpoint, so a run stopped (or
killed) and resumed gives the same weights as an uninterrupted run (on CPU).
Host syncs (``.item()``) happen at sync points only: every log interval, validation and checkpoint.
Under torchrun every rank runs this loop on its share of each global batch; rank 0 alone writes.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader

from rsbench import distributed as dist
from rsbench._version import __version__
from rsbench.cards import MethodCard, card_from_dict
from rsbench.data import create_dataset
from rsbench.data.sampler import EpochBatches
from rsbench.data.transforms import EvalResize, InMemory, PairedAugment, SeededAugmented, collate
from rsbench.errors import ConfigError, RsbenchError
from rsbench.io import write_text
from rsbench.models.contract import encoder_parameters
from rsbench.runs import (
    CHECKPOINT_NAME,
    atomic_save,
    build_model,
    data_fingerprint,
    has_checkpoint,
    load_checkpoint,
    load_resumable,
    model_from_checkpoint,
)
from rsbench.seeding import mix
from rsbench.signals import STOP_SIGNALS, StopSignals, exit_code, ignore_stop_signals, signal_name, stop_signals
from rsbench.training.grad_share import GRAD_SHARE_EVERY, gradient_shares
from rsbench.training.log import TrainLog
from rsbench.training.schedule import lr_factor, param_groups
from rsbench.training.step import StudentForward, TrainStep, build_losses, needs_features

LOG_INTERVAL = 50  # iterations averaged per line of log.jsonl (fewer when validation is more frequent)
ETA_AFTER = 10  # iterations measured before the run prints its estimated duration ...
ETA_AFTER_S = 30.0  # ... or seconds, whichever comes first
LOCK_NAME = ".rsbench.lock"


class TrainingError(RsbenchError):
    """Training cannot go on (NaN loss, incompatible checkpoint)."""


class TrainingInterrupted(RsbenchError):
    """A stop signal (Ctrl-C, SIGTERM, SIGUSR1, SIGUSR2): the run stopped cleanly at ``iteration`` with a
    checkpoint written there. ``exit_code`` is 128 + the signal's number (130 for Ctrl-C)."""

    def __init__(self, iteration: int, total: int, checkpoint: Path, signum: int = signal.SIGINT) -> None:
        self.signal = signal_name(signum)
        super().__init__(f"interrupted at iteration {iteration} of {total} ({self.signal}); checkpoint written: "
                         f"{checkpoint}")
        self.iteration, self.total, self.checkpoint = iteration, total, checkpoint
        self.exit_code = exit_code(signum)


@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict[str, float]]
    wall_time_s: float
    iteration: int = 0
    total: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.iteration >= self.total


# ---------------------------------------------------------------- run folder safety
@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Own ``out_dir`` for the run: a second run on the same folder refuses with one line.

    The lock file names the owner's pid and host; a lock left by a dead process (same host) is taken over.
    """
    if not dist.is_primary():
        yield
        return
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid, _, host = path.read_text().strip().partition(" ")
            if host == socket.gethostname() and pid.isdigit() and _alive(int(pid)):
                raise ConfigError(f"{out_dir} is in use by another run (pid {pid}, lock file {path}); wait for "
                                  "it to end or choose another --out") from None
            path.unlink(missing_ok=True)  # stale: its owner is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    try:
        yield
    finally:
        if path.exists() and path.read_text() == me:
            path.unlink()
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a run that wrote nothing leaves nothing


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _card_differences(saved: dict[str, Any], card: MethodCard) -> dict[str, tuple[Any, Any]]:
    """``{key: (in the checkpoint, now)}`` for every setting that differs (saved cards converted first)."""
    now = card.to_dict()
    try:
        was = card_from_dict(saved).to_dict()
    except RsbenchError:
        was = saved
    return {k: (was.get(k), now.get(k)) for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)}


def _fmt_eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- the loop
def train(
    card: MethodCard,
    dataset: str,
    out_dir: str | Path,
    root: str | Path | None = None,
    teacher: str | Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    device: str = "auto",
    progress: bool = True,
    profile: str = "",
    modalities: tuple[str, ...] | None = None,
    log_grad_share: bool = False,
    notify: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train one stage as the card says and write ``out_dir/last.pt`` (+ ``card.yaml``, ``log.jsonl``).

    Args:
        teacher: checkpoint of the frozen teacher (student cards only).
        resume: continue from ``out_dir/last.pt`` (its card and data must match; a larger ``card.iters``
            extends the schedule, see ``rsbench.training.schedule``).
        stop_after: stop (with a checkpoint) after this many iterations in this call.
        modalities: train on these modalities only (default: the dataset's published set).
        log_grad_share: write each weighted term's encoder gradient norm, and its ratio to the
            cross-entropy's, into ``log.jsonl`` (costs extra backward passes).
        notify: where one-line messages go (estimated duration, schedule changes); default: the bar.

    Stop signals (``rsbench.signals``): from the call's start, the first SIGINT, SIGTERM, SIGUSR1 or SIGUSR2
    (repeats counted once) stops the run after the current step, with a checkpoint there, and raises
    :class:`TrainingInterrupted` (the lock is released). One process checks after every step; under torchrun the
    ranks agree on it after every step on CPU (gloo, cheap) and at sync points on GPU (every rank stops at the same
    step; a host sync each).
    """
    out_dir = Path(out_dir).expanduser()
    with stop_signals() as stop:
        dev = dist.setup(device)
        with run_lock(out_dir):
            return _train(card, dataset, out_dir, root, teacher, resume, stop_after, dev, progress, profile,
                          modalities, log_grad_share, notify, stop)


def _train(card: MethodCard, dataset: str, out_dir: Path, root: str | Path | None, teacher: str | Path | None,
           resume: bool, stop_after: int | None, dev: torch.device, progress: bool, profile: str,
           modalities: tuple[str, ...] | None, log_grad_share: bool,
           notify: Callable[[str], None] | None, stop_request: StopSignals) -> TrainResult:
    start_time = time.perf_counter()
    rank, world = dist.rank(), dist.world_size()
    primary = rank == 0
    notes: list[str] = []

    # ---- data (rank 0 first: generated sets are written once)
    synth = card.synth or None
    with dist.primary_first():
        train_ds = create_dataset(dataset, root=root, split="train", synth=synth, modalities=modalities)
        val_ds = create_dataset(dataset, root=root, split="val", synth=synth, modalities=modalities,
                                transform=EvalResize(card.eval_size, card.eval_resize) if card.eval_size else None)
    fingerprint = data_fingerprint(train_ds)
    modalities, num_classes = train_ds.modalities, train_ds.info.num_classes

    # ---- model, teacher, step, optimiser
    torch.manual_seed(card.seed)  # here, after the data: generating a -synth set must not move the initial weights
    model = build_model(card, modalities, num_classes).to(dev)
    teacher_model = None
    if card.stage == "student":
        if teacher is None:
            raise ConfigError(f"card {card.name} trains a student: give the teacher checkpoint")
        t_ckpt = load_checkpoint(teacher)
        if tuple(t_ckpt["modalities"]) != modalities or int(t_ckpt["num_classes"]) != num_classes:
            raise ConfigError(f"teacher {teacher} was trained on {t_ckpt.get('dataset', '?')} "
                              f"({','.join(t_ckpt['modalities'])}; {int(t_ckpt['num_classes'])} classes); this student "
                              f"trains on {dataset} ({','.join(modalities)}; {num_classes} classes)")
        if t_ckpt["data_fingerprint"] != fingerprint:
            raise ConfigError(f"teacher {teacher} was trained on other data than this student's training split")
        teacher_model, _ = model_from_checkpoint(t_ckpt)
        teacher_model = teacher_model.to(dev).requires_grad_(False)
    if world > 1:  # identical initial weights above; per-sample randomness (drop path) differs by rank below
        torch.manual_seed(mix(card.seed, rank))
        dist.sync_batchnorm(model, dev)  # BatchNorm statistics over the global batch (before the optimiser sees them)
    losses = build_losses(card, num_classes)
    optimizer = torch.optim.AdamW(param_groups(model, card.weight_decay), lr=card.lr)
    use_amp = card.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    # ---- resume
    start_iter, history, schedule = 0, [], []
    ckpt_path = out_dir / CHECKPOINT_NAME
    state = None
    if resume:
        state, used = load_resumable(ckpt_path)
        if used != ckpt_path:
            notes.append(f"{ckpt_path} is unreadable; resuming from the previous checkpoint {used}")
        differ = {k: v for k, v in _card_differences(state["card"], card).items() if k != "iters"}
        if differ:
            parts = ", ".join(f"{k}: {was!r} in the checkpoint, {now!r} now" for k, (was, now) in differ.items())
            raise TrainingError(f"cannot resume {ckpt_path}: settings differ ({parts})")
        if state["data_fingerprint"] != fingerprint:
            raise TrainingError(f"cannot resume {ckpt_path}: it was trained on other data")
        start_iter, history = int(state["iter"]), list(state["history"])
        schedule = list(state.get("schedule", []))
        was_iters = int(state["card"].get("iters", card.iters))
        if card.iters < start_iter:
            raise TrainingError(f"cannot resume {ckpt_path} with --iters {card.iters}: it has already run "
                                f"{start_iter} iterations")
        if card.iters != was_iters:
            schedule.append({"at": start_iter, "iters": card.iters, "was": was_iters})
            notes.append(f"schedule extended from {was_iters} to {card.iters} iterations at iteration {start_iter}: "
                         f"the poly decay now ends at {card.iters} (learning rate x{lr_factor(start_iter, card):.3f} "
                         "from here)")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state and use_amp:
            scaler.load_state_dict(state["scaler"])
    elif primary and has_checkpoint(out_dir):
        raise ConfigError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")

    student = StudentForward(model, features=bool(needs_features(losses)))
    if world > 1:
        wrapped: nn.Module = nn.parallel.DistributedDataParallel(
            student, device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=card.modality_dropout and card.fill == "drop")
    else:
        wrapped = student
    step = TrainStep(wrapped, teacher_model, losses, card.weights, fill=card.fill,
                     modality_dropout=card.modality_dropout, num_modalities=len(modalities), seed=card.seed,
                     rank=rank, world_size=world)
    if state is not None:
        ranks_rng = state["rng"].get("torch_ranks")
        torch.set_rng_state(ranks_rng[rank] if ranks_rng and len(ranks_rng) == world else state["rng"]["torch"])
        if dev.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], dev)
        step.load_rng_state(state["rng"])

    source = InMemory(train_ds) if card.cache_data else train_ds
    aug = SeededAugmented(source, PairedAugment(card.crop, card.scale_min, card.scale_max), card.seed)
    batches = EpochBatches(len(train_ds), card.batch_size, card.seed, start_iter, card.iters, rank, world)
    # A private generator: creating the loader's iterator must not draw from the global RNG,
    # or a resumed run's dropout masks would shift by one draw.
    loader = DataLoader(aug, batch_sampler=batches, num_workers=card.num_workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(card.seed), pin_memory=dev.type == "cuda",
                        worker_init_fn=ignore_stop_signals if card.num_workers else None)
    end_iter = card.iters if stop_after is None else min(card.iters, start_iter + stop_after)

    def save(it: int) -> None:
        ranks_rng = dist.all_gather_objects(torch.get_rng_state()) if world > 1 else None  # collective: every rank
        if not primary:
            return
        rng = {"torch": torch.get_rng_state(), **step.rng_state()}
        if ranks_rng is not None:  # each rank's own stream (drop path differs by rank)
            rng["torch_ranks"] = ranks_rng
        if dev.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(dev)
        atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "iter": it,
                "complete": it >= card.iters,
                "rng": rng,
                "card": card.to_dict(),
                "schedule": schedule,
                "profile": profile,
                "dataset": dataset,
                "data_fingerprint": fingerprint,
                "modalities": list(modalities),
                "num_classes": num_classes,
                "history": history,
                "world_size": world,
                "rsbench_version": __version__,
                "torch_version": str(torch.__version__),
            },
            ckpt_path,
            keep_previous=True,
        )
        write_text(out_dir / "card.yaml", yaml.safe_dump({"profile": profile, **card.to_dict(), "schedule": schedule},
                                                         sort_keys=False))

    from rsbench.progress import TrainProgress

    log = TrainLog(out_dir, min(LOG_INTERVAL, card.val_interval), start_iter) if primary else None
    sync_every = min(LOG_INTERVAL, card.val_interval, card.ckpt_interval)
    model.train()
    it = start_iter
    pending: list[tuple[int, float, dict[str, Tensor], dict[str, float]]] = []  # steps since the last sync
    last_saved = start_iter if state is not None else None

    def flush(bar: Any, val: dict[int, float] | None = None) -> None:
        """The sync point: values to the host, NaN check, log lines (``val``: mIoU of validated iterations)."""
        if not pending:
            return
        values = torch.stack([torch.stack([t["loss"].float(), *[v.float() for k, v in t.items() if k != "loss"]])
                              for _, _, t, _ in pending])
        rows = values.tolist()
        for (i, _, terms, _), row in zip(pending, rows, strict=True):
            if not all(math.isfinite(v) for v in row):
                parts = ", ".join(f"{k}={v:.3g}" for k, v in zip(terms, row, strict=True))
                kept = f"the last good checkpoint (iteration {last_saved}) is kept: {ckpt_path}" if last_saved \
                    is not None else "no checkpoint was written"
                raise TrainingError(f"loss became non-finite at iteration {i} ({parts}); {kept}; lower the "
                                    "learning rate or check the data")
        for (i, lr, terms, shares), row in zip(pending, rows, strict=True):
            if log is not None:
                log.step(i, lr, row[0], {k: v for k, v in zip(list(terms)[1:], row[1:], strict=True)} | shares,
                         (val or {}).get(i))
        bar.update(pending[-1][0], **dict(zip(pending[-1][2], rows[-1], strict=True)))
        pending.clear()

    def agreed_stop(sync: bool) -> int | None:
        """The signal that stops the run after this step (None: go on); under torchrun every rank gets the same."""
        signum = stop_request.signum
        if world == 1:
            return signum
        if not (sync or dev.type == "cpu"):  # on GPU the ranks agree at sync points only (a host sync each)
            return None
        votes = torch.zeros(len(STOP_SIGNALS))
        if signum is not None:
            votes[STOP_SIGNALS.index(signum) if signum in STOP_SIGNALS else 0] = 1.0
        hits = dist.all_reduce_sum(votes.to(dev)).tolist()
        return next((int(STOP_SIGNALS[i]) for i, v in enumerate(hits) if v > 0), None)

    with TrainProgress(total=card.iters, start=start_iter, enabled=progress and primary,
                       title=f"{card.name} on {dataset}") as bar:
        say = notify or bar.log
        for note in notes if primary else []:
            say(note)
        if profile == "paper" and dev.type == "cpu" and primary and start_iter < end_iter:
            say(f"the paper profile is the published GPU schedule ({card.iters} iterations at crop {card.crop}); "
                "on a CPU it takes hours to days (an estimate follows after the first iterations): "
                "--profile quick trains in minutes")
        if world == 1 and stop_request.requested and start_iter < end_iter:  # a signal during the setup
            if state is None:
                save(it)
            raise TrainingInterrupted(it, card.iters, ckpt_path, stop_request.signum or signal.SIGINT)
        t_first, t_loop = None, time.perf_counter()
        for batch in loader:
            if it >= end_iter:
                break
            for g in optimizer.param_groups:
                g["lr"] = card.lr * lr_factor(it, card)
            mods = {k: v.to(dev, non_blocking=True) for k, v in batch["modalities"].items()}
            labels = batch["label"].to(dev, non_blocking=True)
            with torch.autocast(dev.type, enabled=use_amp):
                out = step(mods, labels)
            shares = {}
            if log_grad_share and (it + 1) % GRAD_SHARE_EVERY == 0:
                terms = {k: v for k, v in out.items() if k != "loss"}
                shares = gradient_shares(encoder_parameters(model), terms,
                                         card.weights)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out["loss"]).backward()
            if card.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), card.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            # detached: holding a step's graph until the sync point would keep its activations alive
            pending.append((it + 1, optimizer.param_groups[0]["lr"], {k: v.detach() for k, v in out.items()}, shares))
            it += 1
            if it == start_iter + 1:  # the first step warms up: timing starts after it ...
                t_first = time.perf_counter()
                if t_first - t_loop > ETA_AFTER_S and primary and it < end_iter:  # ... unless it alone took long
                    per_it = t_first - t_loop
                    say(f"estimated: {_fmt_eta(per_it * (end_iter - it))} for the remaining {end_iter - it} "
                        f"iterations ({per_it:.2f} s per iteration, from the first)")
                    t_first = None
            elif t_first is not None and primary and it < end_iter:
                done, spent = it - start_iter - 1, time.perf_counter() - t_first
                if done >= ETA_AFTER or spent > ETA_AFTER_S:  # slow steps (paper profile on a CPU): say it sooner
                    per_it = spent / done
                    say(f"estimated: {_fmt_eta(per_it * (end_iter - it))} for the remaining {end_iter - it} "
                        f"iterations ({per_it:.2f} s per iteration)")
                    t_first = None
            validate = it % card.val_interval == 0 or it == card.iters
            due = it % card.ckpt_interval == 0 or it == end_iter  # a checkpoint is due
            sync = due or validate or it % sync_every == 0
            stop = agreed_stop(sync)
            checkpoint = due or stop is not None
            miou = None
            if validate:
                from rsbench.evaluation import evaluate_full

                miou = evaluate_full(model, val_ds, batch_size=card.batch_size, device=dev)
                history.append({"iter": it, "val_miou": miou, "loss": float(out["loss"].detach())})
                if primary:
                    bar.log(f"iter {it}: val mIoU {miou:.2f}")
                model.train()
            if sync or checkpoint:
                flush(bar, {it: miou} if miou is not None else None)
            if checkpoint:
                save(it)  # a signal now only sets the request again (counted once): the write completes
                last_saved = it
            if stop is not None and it < end_iter:  # (a stop at the last step: the run is done)
                dist.barrier()
                raise TrainingInterrupted(it, card.iters, ckpt_path, stop)
        flush(bar)
    if it == start_iter and state is None:
        save(it)
    dist.barrier()
    return TrainResult(ckpt_path, history, time.perf_counter() - start_time, it, card.iters, notes)
