"""The one training loop, for every method and stage (nanoGPT's habit: read it top to bottom).

setup -> data -> model (and frozen teacher for students) -> optimiser -> loop:
    batch -> modality dropout (students) -> forward -> weighted losses -> step -> schedule
    -> periodic validation -> atomic checkpoint.
Methods differ by their cards (losses, weights, dropout), never by copies of this loop.

Determinism and resume: the batch order depends only on (seed, epoch), each sample's
augmentation on (seed, epoch, index), and the global and dropout RNG states are saved in
every checkpoint, so stopping after N steps and resuming gives the same weights as an
uninterrupted run (on CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from rsbench import __version__
from rsbench.cards import MethodCard
from rsbench.data import create_dataset
from rsbench.data.transforms import EvalResize, InMemory, PairedAugment, SeededAugmented, collate
from rsbench.errors import ConfigError, RsbenchError
from rsbench.losses import create_loss, draw_pair_table
from rsbench.modality_dropout import ModalityDropout
from rsbench.runs import (  # noqa: F401 - re-exported: the loop's callers and tests use these names
    CHECKPOINT_NAME,
    atomic_save,
    build_model,
    data_fingerprint,
    finished_run,
    load_checkpoint,
    model_from_checkpoint,
    pick_device,
)
from rsbench.train_log import TrainLog

LOG_INTERVAL = 50  # iterations averaged per line of log.jsonl (fewer when validation is more frequent)
GRAD_SHARE_EVERY = 5  # with log_grad_share: measure the gradient shares on every 5th step (10 per log line)


class TrainingError(RsbenchError):
    """Training cannot go on (NaN loss, incompatible checkpoint)."""


# ---------------------------------------------------------------- helpers
def lr_factor(it: int, card: MethodCard) -> float:
    """Linear warm-up from ``warmup_ratio`` to 1, then poly decay to 0 (per iteration, published)."""
    if it < card.warmup_iters:
        return card.warmup_ratio + (1.0 - card.warmup_ratio) * it / card.warmup_iters
    span = max(1, card.iters - card.warmup_iters)
    return (1.0 - (it - card.warmup_iters) / span) ** card.poly_power


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices and kernels, none on 1-D params (norms, biases)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class EpochBatches(Sampler[list[int]]):
    """Batches of a seeded per-epoch permutation, starting at any global iteration (for resume)."""

    def __init__(self, n: int, batch_size: int, seed: int, start_iter: int, total_iters: int,
                 dataset: SeededAugmented) -> None:
        if n < batch_size:
            raise ConfigError(f"the training split has {n} samples, fewer than batch size {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.total, self.dataset = start_iter, total_iters, dataset
        self.per_epoch = n // batch_size

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self) -> Iterator[list[int]]:
        it = self.start
        while it < self.total:
            epoch, pos = divmod(it, self.per_epoch)
            self.dataset.set_epoch(epoch)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
            for b in range(pos, self.per_epoch):
                if it >= self.total:
                    return
                yield perm[b * self.batch_size : (b + 1) * self.batch_size].tolist()
                it += 1


# ---------------------------------------------------------------- losses
@dataclass
class StepOutputs:
    """What one forward pass produced, for the loss terms."""

    logits: Tensor
    features: list[Tensor]
    labels: Tensor
    teacher_logits: Tensor | None = None
    teacher_features: list[Tensor] | None = None
    slot_present: Tensor | None = None
    """bool ``[M]``: student slots holding features (``drop`` fusion leaves dropped ones zero); None = all."""


FEATURE_LOSSES = ("hpdm", "rrm")
TEACHER_LOSSES = {"kd", *FEATURE_LOSSES}


def build_losses(card: MethodCard, num_classes: int) -> dict[str, nn.Module]:
    """One module per weighted loss term named in the card."""
    options: dict[str, dict[str, Any]] = {
        "ohem_ce": {"thresh": card.ohem_thresh},
        "kd": {"temperature": card.kd_temperature},
        "hpdm": {"num_classes": num_classes, "pairing": card.hpdm_pairing, "norm": card.hpdm_norm},
        "rrm": {"pairing": card.rrm_pairing, "axis": card.rrm_axis, "lam": card.rrm_lambda,
                "n_samples": card.rrm_samples, "form": card.rrm_form, "noise_std": card.rrm_noise_std},
    }
    if card.stage == "teacher" and TEACHER_LOSSES & set(card.losses):
        raise ConfigError(f"card {card.name}: losses {sorted(TEACHER_LOSSES & set(card.losses))} need a teacher")
    try:
        return {name: create_loss(name, **options.get(name, {})) for name in card.losses}
    except ValueError as exc:
        raise ConfigError(f"card {card.name}: {exc}") from None


def noise_generator(gen: torch.Generator, device: torch.device) -> torch.Generator:
    """RRM noise source on the features' device, seeded from the (CPU, checkpointed) loss generator.

    Drawing on a CPU generator and copying ``n x P x C x h x w`` noise to the GPU each step is
    slow; a per-step device generator keeps resume exact (its seed comes from ``gen``).
    """
    if device.type == "cpu":
        return gen
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return torch.Generator(device=device).manual_seed(seed)


def loss_terms(losses: dict[str, nn.Module], out: StepOutputs, gen: torch.Generator) -> dict[str, Tensor]:
    """Each named loss on the step's outputs (unweighted).

    HPDM and RRM draw their pair tables (``rsbench.losses._pairing``) once per step and scheme, so
    two losses with the same scheme share one draw (the paper's shared permutation). With ``drop``
    fusion the slots of dropped modalities hold constant zeros (not encoded): pairs landing on one
    would add a constant and no gradient, so they are skipped (``slot_present``); with ``zero``
    fusion every slot is encoded and every pair counts. Both run in float32 with autocast off.
    """
    terms: dict[str, Tensor] = {}
    tables: dict[str, Tensor] = {}
    for name, fn in losses.items():
        if name in ("ohem_ce", "ce"):
            terms[name] = fn(out.logits, out.labels)
        elif name == "kd":
            terms[name] = fn(out.logits, out.teacher_logits)
        elif name in FEATURE_LOSSES:
            b, m = out.teacher_features[0].shape[:2]
            if fn.pairing not in tables:
                tables[fn.pairing] = draw_pair_table(fn.pairing, b, len(out.teacher_features), m, gen)
            student = [f.float() for f in out.features]
            teacher = [f.float() for f in out.teacher_features]
            with torch.autocast(out.logits.device.type, enabled=False):
                if name == "hpdm":
                    terms[name] = fn(student, teacher, out.labels, pairing=tables[fn.pairing],
                                     slot_present=out.slot_present)
                else:
                    terms[name] = fn(student, teacher, generator=noise_generator(gen, student[0].device),
                                     pairing=tables[fn.pairing], slot_present=out.slot_present)
        else:
            raise ConfigError(f"loss {name!r} has no training wiring")
    return terms


def gradient_shares(params: list[nn.Parameter], terms: dict[str, Tensor], weights: dict[str, float],
                    reference: str = "ohem_ce") -> dict[str, float]:
    """Each weighted term's gradient norm on ``params`` and its ratio to ``reference``'s (the task loss).

    Why: the README's account of which term drives training must be a measurement, not a reading of
    loss values (a term's size says little about its pull on the weights). One extra backward pass
    per term, so it runs only when asked (``--log-grad-share``) and on every ``GRAD_SHARE_EVERY``-th step.
    """
    norms = {}
    for name, value in terms.items():
        grads = torch.autograd.grad(weights[name] * value, params, retain_graph=True, allow_unused=True)
        norms[name] = math.sqrt(sum(float(g.detach().double().pow(2).sum()) for g in grads if g is not None))
    ref = norms.get(reference) or norms.get("ce")
    out = {f"gnorm/{k}": v for k, v in norms.items()}
    if ref:
        out.update({f"gshare/{k}": v / ref for k, v in norms.items() if k not in (reference, "ce")})
    return out


# ---------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict[str, float]]
    wall_time_s: float


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
) -> TrainResult:
    """Train one stage as the card says and write ``out_dir/last.pt`` (+ ``card.yaml``).

    Args:
        teacher: checkpoint of the frozen teacher (student cards only).
        resume: continue from ``out_dir/last.pt`` (its card and data must match).
        stop_after: stop (with a checkpoint) after this many iterations in this call.
        modalities: train on these modalities only (default: the dataset's published set).
        log_grad_share: write each weighted term's encoder gradient norm, and its ratio to the
            cross-entropy's, into ``log.jsonl`` (see ``gradient_shares``; costs extra backward passes).
    """
    start_time = time.perf_counter()
    out_dir = Path(out_dir).expanduser()
    dev = pick_device(device)
    torch.manual_seed(card.seed)

    # ---- data
    synth = card.synth or None
    train_ds = create_dataset(dataset, root=root, split="train", synth=synth, modalities=modalities)
    val_ds = create_dataset(dataset, root=root, split="val", synth=synth, modalities=modalities,
                            transform=EvalResize(card.eval_size) if card.eval_size else None)
    fingerprint = data_fingerprint(train_ds)
    modalities, num_classes = train_ds.modalities, train_ds.info.num_classes

    # ---- model, teacher, optimiser
    model = build_model(card, modalities, num_classes).to(dev)
    teacher_model = None
    if card.stage == "student":
        if teacher is None:
            raise ConfigError(f"card {card.name} trains a student: give the teacher checkpoint")
        t_ckpt = load_checkpoint(teacher)
        if tuple(t_ckpt["modalities"]) != modalities or int(t_ckpt["num_classes"]) != num_classes:
            raise ConfigError(f"teacher {teacher} was trained on other modalities/classes")
        if t_ckpt["data_fingerprint"] != fingerprint:
            raise ConfigError(f"teacher {teacher} was trained on other data than this student's training split")
        teacher_model, _ = model_from_checkpoint(t_ckpt)
        teacher_model = teacher_model.to(dev).requires_grad_(False)
    losses = build_losses(card, num_classes)
    weights = card.losses
    optimizer = torch.optim.AdamW(param_groups(model, card.weight_decay), lr=card.lr)
    dropout_gen = torch.Generator().manual_seed(card.seed + 1)
    loss_gen = torch.Generator().manual_seed(card.seed + 2)
    dropout = ModalityDropout(len(modalities), dropout_gen)

    start_iter, history = 0, []
    ckpt_path = out_dir / CHECKPOINT_NAME
    if resume:
        state = load_checkpoint(ckpt_path)
        if state["card"] != card.to_dict():
            raise TrainingError(f"cannot resume {ckpt_path}: it was trained with another card or settings")
        if state["data_fingerprint"] != fingerprint:
            raise TrainingError(f"cannot resume {ckpt_path}: it was trained on other data")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        dropout_gen.set_state(state["rng"]["dropout"])
        loss_gen.set_state(state["rng"]["loss"])
        start_iter, history = int(state["iter"]), list(state["history"])
    elif ckpt_path.exists():
        raise ConfigError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")

    source = InMemory(train_ds) if card.cache_data else train_ds
    aug = SeededAugmented(source, PairedAugment(card.crop, card.scale_min, card.scale_max), card.seed)
    batches = EpochBatches(len(train_ds), card.batch_size, card.seed, start_iter, card.iters, aug)
    # A private generator: creating the loader's iterator must not draw from the global RNG,
    # or a resumed run's dropout masks would shift by one draw.
    loader = DataLoader(aug, batch_sampler=batches, num_workers=card.num_workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(card.seed))
    use_amp = card.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    end_iter = card.iters if stop_after is None else min(card.iters, start_iter + stop_after)

    def save(it: int) -> None:
        atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "iter": it,
                "complete": it >= card.iters,
                "rng": {"torch": torch.get_rng_state(), "dropout": dropout_gen.get_state(),
                        "loss": loss_gen.get_state()},
                "card": card.to_dict(),
                "profile": profile,
                "dataset": dataset,
                "data_fingerprint": fingerprint,
                "modalities": list(modalities),
                "num_classes": num_classes,
                "history": history,
                "rsbench_version": __version__,
                "torch_version": str(torch.__version__),
            },
            ckpt_path,
        )
        card_file = out_dir / "card.yaml"
        if not card_file.exists():
            card_file.write_text(yaml.safe_dump({"profile": profile, **card.to_dict()}, sort_keys=False))

    from rsbench.progress import TrainProgress

    log = TrainLog(out_dir, min(LOG_INTERVAL, card.val_interval), start_iter)
    model.train()
    it = start_iter
    with TrainProgress(total=card.iters, start=start_iter, enabled=progress, title=f"{card.name} on {dataset}") as bar:
        for batch in loader:
            if it >= end_iter:
                break
            for g in optimizer.param_groups:
                g["lr"] = card.lr * lr_factor(it, card)
            mods = {k: v.to(dev, non_blocking=True) for k, v in batch["modalities"].items()}
            labels = batch["label"].to(dev, non_blocking=True)
            b = labels.shape[0]
            present = dropout(b).to(dev) if card.modality_dropout else None
            with torch.autocast(dev.type, enabled=use_amp):
                logits, feats = model.forward_features(mods, present)
                slot_present = present.any(0) if present is not None and card.fill == "drop" else None
                out = StepOutputs(logits, feats, labels, slot_present=slot_present)
                if teacher_model is not None and TEACHER_LOSSES & set(losses):
                    with torch.no_grad():
                        out.teacher_logits, out.teacher_features = teacher_model.forward_features(mods)
                terms = loss_terms(losses, out, loss_gen)
                loss = sum(weights[k] * v for k, v in terms.items())
            shares = {}
            if log_grad_share and (it + 1) % GRAD_SHARE_EVERY == 0:
                shares = gradient_shares([p for p in model.encoder.parameters() if p.requires_grad], terms, weights)
            if not math.isfinite(loss.item()):
                parts = ", ".join(f"{k}={v.item():.3g}" for k, v in terms.items())
                raise TrainingError(
                    f"loss became {loss.item()} at iteration {it} ({parts}); lower the learning rate or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if card.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), card.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            it += 1
            scalars = {k: v.item() for k, v in terms.items()}
            bar.update(it, loss=loss.item(), **scalars)
            miou = None
            if it % card.val_interval == 0 or it == card.iters:
                from rsbench.evaluation import evaluate_full

                miou = evaluate_full(model, val_ds, batch_size=card.batch_size, device=dev)
                history.append({"iter": it, "val_miou": miou, "loss": loss.item()})
                bar.log(f"iter {it}: val mIoU {miou:.2f}")
                model.train()
            log.step(it, optimizer.param_groups[0]["lr"], loss.item(), {**scalars, **shares}, miou)
            if it % card.ckpt_interval == 0 or it == end_iter:
                save(it)
    if it == start_iter:
        save(it)
    return TrainResult(ckpt_path, history, time.perf_counter() - start_time)
