"""``rsbench train METHOD``: train a method card's stages (teacher, then student) on a dataset."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rsbench.cards import MethodCard, load_card
from rsbench.console import console, header_before_output
from rsbench.errors import ConfigError
from rsbench.threads import THREADS_HELP

if TYPE_CHECKING:
    from rsbench.signals import StopSignals


def _check_training_data(dataset: str, root: Path | None, card: MethodCard, mods: tuple[str, ...] | None) -> None:
    """Header-check every file of the train and val splits the run reads (one line on the first bad one)."""
    from rsbench.data import create_dataset
    from rsbench.validate import check_dataset_files

    splits = [create_dataset(dataset, root=root, split=s, synth=card.synth or None, modalities=mods)
              for s in ("train", "val")]
    check_dataset_files(splits)


def train_cmd(
    method: str = typer.Argument(..., help="Method card name (e.g. teacher) or path to a card .yaml."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="deliver, muses, mcubes, or a -synth name."),
    root: Path | None = typer.Option(None, "--root", help="Folder of the real dataset."),
    profile: str = typer.Option("paper", "--profile", "-p", help="Card profile: paper (GPU) or quick (CPU)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/DATASET/METHOD-PROFILE)."),
    stage: str | None = typer.Option(None, "--stage", help="Only this stage: teacher or student."),
    teacher: Path | None = typer.Option(None, "--teacher", help="Teacher checkpoint for a student stage."),
    iters: int | None = typer.Option(
        None, "--iters", help="Override the card's iterations (a student card: the student's; see --teacher-iters)."),
    teacher_iters: int | None = typer.Option(
        None, "--teacher-iters", help="A student card whose teacher is trained here: the teacher's iterations."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Override the batch size (this card's stage)."),
    lr: float | None = typer.Option(None, "--lr", help="Override the learning rate (this card's stage)."),
    seed: int | None = typer.Option(None, "--seed", help="Override the seed (both stages)."),
    model: str | None = typer.Option(
        None, "--model", help="Train another registered architecture with this recipe (both stages), e.g. "
        "cmnext_mit_test; its head width is the model's own unless --embed-dim is given (`rsbench models`)."),
    fill: str | None = typer.Option(None, "--fill", help="Override the card's fill (zero or drop), both stages."),
    embed_dim: int | None = typer.Option(None, "--embed-dim", help="Override the decode head's width."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    stop_after: int | None = typer.Option(None, "--stop-after", help="Stop (with a checkpoint) after N iterations."),
    modalities: str | None = typer.Option(None, "--modalities", help="Comma-separated subset to train on."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1 ..."),
    log_grad_share: bool = typer.Option(
        False, "--log-grad-share", help="Log each weighted loss term's encoder gradient norm relative to the CE's."),
    threads: int | None = typer.Option(None, "--threads", help=THREADS_HELP),
    nproc: int = typer.Option(1, "--nproc", help="Train with N processes: runs this command under torchrun "
                              "(DDP; one GPU each, or gloo on CPU)."),
) -> None:
    """Train a method: a teacher card directly; a student card after (or reusing) its teacher."""
    from rsbench.threads import apply_threads, choose_threads
    from rsbench.validate import positive_float, positive_int

    # parse and validate everything before any compute: a bad input fails here, with nothing written; the
    # options and the card's values first, before anything imports torch (a typo answers in a fraction of a second)
    for option, value in (("--iters", iters), ("--batch-size", batch_size), ("--stop-after", stop_after),
                          ("--teacher-iters", teacher_iters)):
        positive_int(option, value)
    positive_float("--lr", lr)
    positive_int("--embed-dim", embed_dim)
    thread_choice = choose_threads(threads)
    overrides = {"iters": iters, "batch_size": batch_size, "lr": lr, "seed": seed}
    architecture = model_overrides(model, fill, embed_dim)
    card = load_card(method, profile, {**overrides, **architecture}, model_default_width=model is not None)

    from rsbench.data import split_name
    from rsbench.training.stages import default_out
    from rsbench.validate import check_device, parse_modalities, writable_folder

    split_name(dataset)
    check_device(device)
    mods = parse_modalities(modalities, dataset)
    if stage not in (None, "teacher", "student"):
        raise ConfigError(f"--stage must be teacher or student, got {stage!r}")
    if stage == "student" and card.stage != "student":
        raise ConfigError(f"method {card.name} has no student stage")
    _check_stage_options(card, stage, teacher, teacher_iters, {"--iters": iters, "--batch-size": batch_size,
                                                               "--lr": lr, "--stop-after": stop_after})
    if teacher is not None and not teacher.expanduser().is_file():
        raise ConfigError(f"--teacher {teacher}: no such checkpoint file")
    if card.stage == "student" and teacher is None and card.teacher is None:
        raise ConfigError(f"student card {card.name} names no teacher card: pass --teacher PATH")
    if card.stage == "student" and teacher is None and card.teacher is not None:
        t_card = load_card(card.teacher, profile, {"seed": seed, "iters": teacher_iters, **architecture},
                           model_default_width=model is not None)
        writable_folder(default_out(dataset, t_card, profile, mods, model), "teacher run folder")
    if stage != "teacher":
        writable_folder(out or default_out(dataset, card, profile, mods, model))
    _check_training_data(dataset, root, card, mods)
    positive_int("--nproc", nproc)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:  # validated: now run this command under torchrun
        _launch_torchrun(nproc)
    apply_threads(thread_choice.threads)
    header_before_output(thread_choice.describe())

    from rsbench.signals import stop_signals
    from rsbench.training import TrainingInterrupted, teacher_for, train

    def say(message: str) -> None:
        console.print(message, highlight=False)

    nproc = max(nproc, int(os.environ.get("WORLD_SIZE", "1")))  # under torchrun: resume with as many processes
    again = ""
    # one stop request for the whole command: a signal between the teacher and the student still stops it
    with stop_signals(exiting=True):
        try:
            if card.stage == "student" and teacher is None:
                plan = _where_options_go(card, t_card, overrides, architecture, teacher_iters)
                again = _resume_command(method, dataset, profile, out or default_out(dataset, card, profile, mods,
                                                                                    model),
                                        {**overrides, **architecture, "teacher_iters": teacher_iters}, modalities,
                                        root, None, nproc, stage=stage)
                teacher = teacher_for(card, dataset, profile=profile, seed=seed, root=root, modalities=mods,
                                      train_it=stage != "student", notify=say, device=device,
                                      architecture=architecture, teacher_iters=teacher_iters, plan=plan)
                if stage == "teacher":
                    return
            elif stage == "teacher" and card.stage == "student":
                raise ConfigError("--stage teacher trains the teacher of a student card: leave out --teacher")

            out = out or default_out(dataset, card, profile, mods, model)
            label = "stage 2: student" if card.stage == "student" else "training"
            console.print(f"[bold]{label}[/bold] card {card.name} ({profile}) on {dataset} -> {out}")
            again = _resume_command(method, dataset, profile, out, {**overrides, **architecture}, modalities, root,
                                    teacher if card.stage == "student" else None, nproc)
            res = train(card, dataset, out, root=root, teacher=teacher, resume=resume, stop_after=stop_after,
                        device=device, profile=profile, modalities=mods, log_grad_share=log_grad_share, notify=say)
        except TrainingInterrupted as stop:
            say(f"interrupted at iteration {stop.iteration} of {stop.total} ({stop.signal}); checkpoint: "
                f"{stop.checkpoint}")
            say(f"resume with: {again}")
            raise typer.Exit(stop.exit_code) from None
    last = res.history[-1] if res.history else None
    tail = f", val mIoU {last['val_miou']:.2f}" if last else ""
    if not res.complete:
        say(f"stopped at iteration {res.iteration} of {res.total} in {res.wall_time_s:.0f} s{tail}: {res.checkpoint}")
        say(f"resume with: {again}")
        return
    say(f"done: {res.total} iterations in {res.wall_time_s:.0f} s{tail}: {res.checkpoint}")


def _check_stage_options(card: MethodCard, stage: str | None, teacher: Path | None, teacher_iters: int | None,
                         student_options: dict[str, object]) -> None:
    """Options that would reach no stage are refused, naming the stage they belong to."""
    if card.stage == "teacher":
        if teacher is not None:
            raise ConfigError(f"--teacher goes with a student card; card {card.name} trains a teacher itself")
        if teacher_iters is not None:
            raise ConfigError(f"--teacher-iters goes with a student card; card {card.name} is a teacher: use --iters")
        return
    if teacher is not None and teacher_iters is not None:
        raise ConfigError("--teacher-iters sets the iterations of the teacher trained here, but --teacher gives one")
    if stage == "teacher":
        given = [name for name, value in student_options.items() if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} reach{'es' if len(given) == 1 else ''} the student, which "
                              "--stage teacher does not train (--teacher-iters sets the teacher's iterations)")


def _where_options_go(card: MethodCard, t_card: MethodCard, overrides: dict, architecture: dict,
                      teacher_iters: int | None) -> str:
    """One line: what each stage trains with, so no option lands on a stage the user did not mean."""
    given = [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None and k != "seed"]
    both = [f"--{k.replace('_', '-')}" for k, v in {"seed": overrides.get("seed"), **architecture}.items()
            if v is not None]
    src = "--teacher-iters" if teacher_iters is not None else "its card; --teacher-iters N to change"
    parts = [f"stage 1, teacher card {t_card.name}: {t_card.iters} iterations ({src})",
             f"stage 2, {card.name}: {card.iters} iterations"]
    if given:
        parts.append(f"{', '.join(given)} reach{'es' if len(given) == 1 else ''} stage 2 only")
    if both:
        parts.append(f"{', '.join(both)} reach{'es' if len(both) == 1 else ''} both")
    return "; ".join(parts)


def model_overrides(model: str | None, fill: str | None, embed_dim: int | None) -> dict:
    """Card overrides that train another architecture with a recipe: its model, fill and head width.

    A card's ``embed_dim`` was chosen for its own model, so ``--model`` alone gives the new model its own
    default width (``load_card(..., model_default_width=True)``); ``--embed-dim`` sets one.
    """
    out: dict = {"fill": fill, "embed_dim": embed_dim}
    if model is not None:
        out["model"] = model
    return out


def _launch_torchrun(nproc: int) -> None:
    """Run this same command line under torchrun with ``nproc`` processes, and exit with its status.

    A stop signal (Ctrl-C, SIGTERM, SIGUSR1, SIGUSR2) stops the ranks at their next agreed step, with a checkpoint;
    the launcher then exits with 128 + the signal's number.
    """
    import sys

    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m",
           "rsbench", *args]
    console.print(f"launching {nproc} processes: {' '.join(cmd[2:])}", highlight=False)
    # torchrun passes SIGUSR1/SIGUSR2 on to the ranks (by default they would end torchrun itself)
    env = {"TORCHELASTIC_SIGNALS_TO_HANDLE": "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2", **os.environ}
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env) as proc, _forward_stop_signals(proc) as got:
        _, stderr = proc.communicate()
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode  # signal N: 128 + N
    errors = list(dict.fromkeys(x for x in stderr.splitlines() if x.startswith("rsbench: error:")))
    if got.signum is not None:  # the ranks stopped (rank 0 said where and how to resume): no torchrun report
        if errors:
            typer.echo("\n".join(errors), err=True)
        raise typer.Exit(got.exit_code if code else 0)
    if code:  # every rank reports the same error, and torchrun adds its own report: say it once
        typer.echo("\n".join(errors) or stderr.rstrip()[-4000:], err=True)
    raise typer.Exit(code)


@contextmanager
def _forward_stop_signals(proc: subprocess.Popen) -> Iterator[StopSignals]:
    """While torchrun runs: the launcher stays alive, and the first stop signal it gets goes to the ranks.

    To the ranks (torchrun's children), not to torchrun: a terminal's Ctrl-C and a scheduler's signal reach
    torchrun directly, and torchrun ends its own shutdown early on a second one. The ranks count repeats once.
    """
    from rsbench.signals import stop_signals

    def forward(signum: int) -> None:
        for pid in _children(proc.pid) or [proc.pid]:
            with suppress(ProcessLookupError):
                os.kill(pid, signum)

    with stop_signals(on_first=forward, exiting=True) as got:
        yield got


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``; empty elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def _resume_command(method: str, dataset: str, profile: str, out: Path, overrides: dict, modalities: str | None,
                    root: Path | None, teacher: Path | None, nproc: int = 1, stage: str | None = "") -> str:
    """The command that continues this run (the same settings, ``--resume``).

    ``stage`` other than ``""``: the command of a student card's teacher stage (the student's ``out``), which
    resumes the teacher by itself (no ``--resume``: the student has no checkpoint yet).
    """
    import shlex

    args = ["rsbench", "train", method, "-d", dataset, "-p", profile, "--out", str(out)]
    args += [x for k, v in overrides.items() if v is not None for x in (f"--{k.replace('_', '-')}", str(v))]
    if modalities:
        args += ["--modalities", modalities]
    if root is not None:
        args += ["--root", str(root)]
    if teacher is not None:
        args += ["--stage", "student", "--teacher", str(teacher)]
    if stage:
        args += ["--stage", stage]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    return shlex.join(args if stage != "" else [*args, "--resume"])
