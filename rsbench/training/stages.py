"""The stage runner: a student's teacher reused when finished (same card, same data) or trained, then the
student. ``rsbench train`` and ``rsbench demo`` both call it, so they reuse and resume runs the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsbench.cards import MethodCard, load_card
from rsbench.errors import ConfigError
from rsbench.runs import CHECKPOINT_NAME, data_fingerprint, finished_run, has_checkpoint
from rsbench.training.loop import TrainResult, train


def default_out(dataset: str, card: MethodCard, profile: str, modalities: tuple[str, ...] | None = None,
                model: str | None = None) -> Path:
    """``runs/<dataset>/<card>-<profile>[-<model>][-<modalities>]`` (the model when it overrides the card's)."""
    suffix = (f"-{model}" if model else "") + (f"-{'+'.join(modalities)}" if modalities else "")
    return Path("runs") / dataset / f"{card.name}-{profile}{suffix}"


def is_finished(card: MethodCard, dataset: str, run_dir: Path, root: Path | None = None,
                modalities: tuple[str, ...] | None = None) -> bool:
    """``run_dir`` holds a complete checkpoint of exactly this card on exactly this training data."""
    from rsbench.data import create_dataset

    train_split = create_dataset(dataset, root=root, split="train", synth=card.synth or None, modalities=modalities)
    return finished_run(run_dir / CHECKPOINT_NAME, card, dataset, data_fingerprint(train_split))


def train_or_reuse(card: MethodCard, dataset: str, run_dir: Path, *, notify: Callable[[str], None] = print,
                   root: Path | None = None, modalities: tuple[str, ...] | None = None,
                   **train_kwargs: Any) -> TrainResult | None:
    """Train ``card`` into ``run_dir``: None when a finished run is there already, resumed when interrupted.

    ``train`` itself refuses to resume a checkpoint of another card or other data.
    """
    ckpt = run_dir / CHECKPOINT_NAME
    if is_finished(card, dataset, run_dir, root, modalities):
        notify(f"reusing {ckpt} (finished, same card and data)")
        return None
    return train(card, dataset, run_dir, root=root, modalities=modalities, resume=has_checkpoint(run_dir),
                 notify=notify, **train_kwargs)


def teacher_for(card: MethodCard, dataset: str, *, profile: str, seed: int | None = None, root: Path | None = None,
                modalities: tuple[str, ...] | None = None, train_it: bool = True,
                notify: Callable[[str], None] = print, architecture: dict[str, Any] | None = None,
                teacher_iters: int | None = None, plan: str | None = None, **train_kwargs: Any) -> Path:
    """The student card's teacher checkpoint: reused when finished with the same card and data, else trained.

    ``architecture``: the student's model overrides (``--model``, ``--fill``, ``--embed-dim``), which the
    teacher takes too (a teacher of another architecture than its student is the user's explicit choice,
    through ``--teacher``).
    """
    if card.teacher is None:
        raise ConfigError(f"student card {card.name} names no teacher card")
    architecture = architecture or {}
    t_card = load_card(card.teacher, profile, {"seed": seed, "iters": teacher_iters, **architecture},
                       model_default_width=bool(architecture.get("model")))
    t_out = default_out(dataset, t_card, profile, modalities, architecture.get("model"))
    t_ckpt = t_out / CHECKPOINT_NAME
    if is_finished(t_card, dataset, t_out, root, modalities):
        notify(f"reusing teacher {t_ckpt} (finished, same card and data)")
        return t_ckpt
    if not train_it:
        raise ConfigError(f"no finished teacher at {t_ckpt}: run --stage teacher first, or pass --teacher PATH")
    if plan:  # only when the teacher is trained here: what each stage trains, and which options reach it
        notify(plan)
    notify(f"stage 1: teacher card {t_card.name} -> {t_out}")
    res = train(t_card, dataset, t_out, root=root, modalities=modalities, profile=profile, notify=notify,
                resume=has_checkpoint(t_out), **train_kwargs)
    if not res.complete:
        raise ConfigError(f"the teacher stopped at iteration {res.iteration} of {res.total}; finish it first")
    notify(f"teacher done in {res.wall_time_s:.0f} s: {t_ckpt}")
    return t_ckpt
