"""``rsbench demo``: the whole pipeline on generated data in a real dataset's layout.

generate ``deliver-synth`` -> train the teacher (quick profile) -> train the RobustSeg
student from it (quick profile, shorter by default) -> evaluate both under every modality
subset (EMM, missing inputs zero-filled as published, and removed from the fusion) -> print
them side by side. Finished runs in the output folder are reused and interrupted ones
resumed, so nothing is lost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from rsbench.console import console

DEMO_TEACHER_ITERS = 600  # a sixth of the quick profile (3600): the demo must stay a few minutes on a laptop
DEMO_STUDENT_ITERS = 1200  # a third of the quick profile


def _train_or_reuse(card: Any, dataset: str, run_dir: Path, device: str, teacher: Path | None = None) -> Path:
    """``run_dir/last.pt``: reused when finished with this card and data, resumed when interrupted, else trained.

    ``train`` itself refuses to resume a checkpoint of another card or other data.
    """
    from rsbench.data import create_dataset
    from rsbench.train import CHECKPOINT_NAME, data_fingerprint, finished_run, train

    ckpt_path = run_dir / CHECKPOINT_NAME
    train_split = create_dataset(dataset, split="train", synth=card.synth or None)
    if finished_run(ckpt_path, card, dataset, data_fingerprint(train_split)):
        console.print(f"   reusing {ckpt_path}")
        return ckpt_path
    console.print(f"   training {card.model} for {card.iters} iterations -> {run_dir}")
    res = train(card, dataset, run_dir, teacher=teacher, resume=ckpt_path.is_file(), device=device, profile="quick")
    console.print(f"   trained in {res.wall_time_s:.0f} s")
    return ckpt_path


def demo(
    dataset: str = typer.Option("deliver-synth", "--dataset", "-d", help="A -synth dataset."),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the runs, checkpoints and records."),
    iters: int = typer.Option(DEMO_TEACHER_ITERS, "--iters", help="Teacher iterations (quick profile: 3600)."),
    student_iters: int = typer.Option(DEMO_STUDENT_ITERS, "--student-iters", help="RobustSeg student iterations."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Generate data, train a teacher and a RobustSeg student, compare them under missing modalities."""
    from rsbench.cards import load_card
    from rsbench.data import create_dataset, split_name
    from rsbench.errors import ConfigError
    from rsbench.evaluation import evaluate
    from rsbench.results import record_checkpoint_evaluation
    from rsbench.train import load_checkpoint, model_from_checkpoint, pick_device

    start = time.perf_counter()
    _, synth = split_name(dataset)
    if not synth:
        raise ConfigError(f"the demo runs on generated data: use {dataset}-synth")
    teacher_card = load_card("teacher", "quick", {"iters": iters})
    student_card = load_card("robustseg", "quick", {"iters": student_iters})

    with console.status(f"generating {dataset} (cached after the first run) ..."):
        val = create_dataset(dataset, split="val", synth=teacher_card.synth or None)
    console.print(f"[bold]1. data[/bold]: {dataset}, modalities {', '.join(val.modalities)}, "
                  f"{val.info.num_classes} classes, {len(val)} val samples")
    console.print("[bold]2. teacher[/bold]: all modalities, no dropout")
    teacher_ckpt = _train_or_reuse(teacher_card, dataset, out.expanduser() / dataset / "teacher", device)
    console.print("[bold]3. RobustSeg student[/bold]: modality dropout + KD + HPDM + RRM from the frozen teacher")
    student_ckpt = _train_or_reuse(student_card, dataset, out.expanduser() / dataset / "robustseg", device,
                                   teacher=teacher_ckpt)

    console.print("[bold]4. evaluation[/bold]: every modality subset (EMM), missing inputs zero-filled and dropped")
    dev = pick_device(device)
    results: dict[tuple[str, str], Any] = {}
    for role, path in (("teacher", teacher_ckpt), ("student", student_ckpt)):
        ckpt = load_checkpoint(path)
        model, card = model_from_checkpoint(ckpt)
        for fill in ("zero", "drop"):
            result = evaluate(model.to(dev), val, "all-subsets", fill=fill, device=dev, progress=True)
            record_checkpoint_evaluation(result, path, ckpt, card, dataset, "val", str(dev))
            results[role, fill] = result
    console.print(_comparison_table(results, dataset))
    t, s = results["teacher", "zero"].summary, results["student", "zero"].summary
    td, sd = results["teacher", "drop"].summary, results["student", "drop"].summary
    console.print(
        f"With every sensor the teacher scores {t['full']:.1f} mIoU and the student {s['full']:.1f}. Averaged over "
        f"the {len(results['teacher', 'zero'].subsets)} subsets, zero-filled: teacher {t['avg']:.1f}, student "
        f"{s['avg']:.1f}; dropped: teacher {td['avg']:.1f}, student {sd['avg']:.1f}. Records are in "
        f"{out / dataset}/*/records/."
    )
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")


def _comparison_table(results: dict[tuple[str, str], Any], dataset: str) -> Table:
    """Per-subset mIoU of teacher and student, for both ways of handling a missing sensor."""
    columns = [("teacher", "zero"), ("student", "zero"), ("teacher", "drop"), ("student", "drop")]
    table = Table(title=f"{dataset}/val: mIoU per modality subset")
    table.add_column("modalities")
    for role, fill in columns:
        table.add_column(f"{role} ({fill})", justify="right")
    for key in results["teacher", "zero"].subsets:
        table.add_row(key, *(f"{results[c].subsets[key]['miou']:.2f}" for c in columns))
    table.add_section()
    for key in ("full", "avg", "e0.2", "worst"):
        table.add_row(f"[bold]{key}[/bold]", *(f"{results[c].summary[key]:.2f}" for c in columns))
    return table
