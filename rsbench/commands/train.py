"""``rsbench train METHOD``: train a method card's stages (teacher, then student) on a dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from rsbench.cards import MethodCard, load_card
from rsbench.console import console
from rsbench.errors import ConfigError


def default_out(dataset: str, card: MethodCard, profile: str, modalities: tuple[str, ...] | None = None) -> Path:
    suffix = f"-{'+'.join(modalities)}" if modalities else ""
    return Path("runs") / dataset / f"{card.name}-{profile}{suffix}"


def _teacher_for(card: MethodCard, dataset: str, root: Path | None, profile: str, seed: int | None,
                 mods: tuple[str, ...] | None, device: str, train_it: bool) -> Path:
    """The student's teacher checkpoint: reused when finished with the same card and data, else trained."""
    from rsbench.data import create_dataset
    from rsbench.train import CHECKPOINT_NAME, data_fingerprint, finished_run, train

    if card.teacher is None:
        raise ConfigError(f"student card {card.name} names no teacher card")
    t_card = load_card(card.teacher, profile, {"seed": seed})
    t_out = default_out(dataset, t_card, profile, mods)
    t_ckpt = t_out / CHECKPOINT_NAME
    train_split = create_dataset(dataset, root=root, split="train", synth=t_card.synth or None, modalities=mods)
    if finished_run(t_ckpt, t_card, dataset, data_fingerprint(train_split)):
        console.print(f"reusing teacher {t_ckpt}")
        return t_ckpt
    if not train_it:
        raise ConfigError(f"no finished teacher at {t_ckpt}: run --stage teacher first, or pass --teacher PATH")
    console.print(f"[bold]stage 1[/bold]: teacher card {t_card.name} -> {t_out}")
    res = train(t_card, dataset, t_out, root=root, resume=t_ckpt.is_file(), device=device, profile=profile,
                modalities=mods)
    console.print(f"teacher done in {res.wall_time_s:.0f} s: {res.checkpoint}")
    return t_ckpt


def train_cmd(
    method: str = typer.Argument(..., help="Method card name (e.g. teacher) or path to a card .yaml."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="deliver, muses, mcubes, or a -synth name."),
    root: Path | None = typer.Option(None, "--root", help="Folder of the real dataset."),
    profile: str = typer.Option("paper", "--profile", "-p", help="Card profile: paper (GPU) or quick (CPU)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/DATASET/METHOD-PROFILE)."),
    stage: str | None = typer.Option(None, "--stage", help="Only this stage: teacher or student."),
    teacher: Path | None = typer.Option(None, "--teacher", help="Teacher checkpoint for a student stage."),
    iters: int | None = typer.Option(None, "--iters", help="Override the card's iterations."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Override the batch size."),
    lr: float | None = typer.Option(None, "--lr", help="Override the learning rate."),
    seed: int | None = typer.Option(None, "--seed", help="Override the seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    stop_after: int | None = typer.Option(None, "--stop-after", help="Stop (with a checkpoint) after N iterations."),
    modalities: str | None = typer.Option(None, "--modalities", help="Comma-separated subset to train on."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1 ..."),
    log_grad_share: bool = typer.Option(
        False, "--log-grad-share", help="Log each weighted loss term's encoder gradient norm relative to the CE's."),
) -> None:
    """Train a method: a teacher card directly; a student card after (or reusing) its teacher."""
    from rsbench.data import split_name
    from rsbench.train import train

    split_name(dataset)
    mods = tuple(m.strip() for m in modalities.split(",") if m.strip()) if modalities else None
    overrides = {"iters": iters, "batch_size": batch_size, "lr": lr, "seed": seed}
    card = load_card(method, profile, overrides)
    if stage not in (None, "teacher", "student"):
        raise ConfigError(f"--stage must be teacher or student, got {stage!r}")
    if stage == "student" and card.stage != "student":
        raise ConfigError(f"method {card.name} has no student stage")

    if card.stage == "student" and teacher is None:
        teacher = _teacher_for(card, dataset, root, profile, seed, mods, device, train_it=stage != "student")
        if stage == "teacher":
            return
    elif stage == "teacher" and card.stage == "student":
        raise ConfigError("--stage teacher trains the teacher of a student card: leave out --teacher")

    out = out or default_out(dataset, card, profile, mods)
    label = "stage 2: student" if card.stage == "student" else "training"
    console.print(f"[bold]{label}[/bold] card {card.name} ({profile}) on {dataset} -> {out}")
    res = train(card, dataset, out, root=root, teacher=teacher, resume=resume, stop_after=stop_after,
                device=device, profile=profile, modalities=mods, log_grad_share=log_grad_share)
    last = res.history[-1] if res.history else None
    tail = f", val mIoU {last['val_miou']:.2f}" if last else ""
    console.print(f"done in {res.wall_time_s:.0f} s{tail}: {res.checkpoint}")
