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
DEMO_SKIPS = ("corruptions",)
"""Shipped cards the demo leaves out (corruptions: 121 conditions on DELIVER; run it with rsbench eval)."""


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
    from rsbench.commands.compare import comparison_table
    from rsbench.data import create_dataset, split_name
    from rsbench.errors import ConfigError
    from rsbench.leaderboard import compare
    from rsbench.protocols import resolve_protocols
    from rsbench.protocols.checkpoint import evaluate_checkpoint

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

    console.print("[bold]4. evaluation[/bold]: EMM (zero-filled and dropped), RMM and noise protocol cards")
    cards = [c for c in resolve_protocols("all") if c.name not in DEMO_SKIPS]
    results: dict[tuple[str, str], Any] = {}
    record_paths = []
    for role, path in (("teacher", teacher_ckpt), ("student", student_ckpt)):
        for result, record in evaluate_checkpoint(path, cards, device=device, progress=True):
            results[role, result.protocol] = result
            record_paths.append(record)
    console.print(_comparison_table(results, dataset))
    console.print(_protocol_table(results, [c.name for c in cards]))
    t, s = results["teacher", "emm"].summary, results["student", "emm"].summary
    td, sd = results["teacher", "emm-drop"].summary, results["student", "emm-drop"].summary
    console.print(
        f"With every sensor the teacher scores {t['full']:.1f} mIoU and the student {s['full']:.1f}. Averaged over "
        f"the {len(results['teacher', 'emm'].subsets)} subsets, zero-filled: teacher {t['avg']:.1f}, student "
        f"{s['avg']:.1f}; dropped: teacher {td['avg']:.1f}, student {sd['avg']:.1f}. Records are in "
        f"{out / dataset}/*/records/."
    )
    console.print("[bold]5. compare[/bold]: the records just written, 95 % intervals over the val images "
                  "(rsbench compare RECORDS --baseline teacher)")
    console.print(comparison_table(compare(record_paths, baseline="teacher", n_boot=300), "teacher"))
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")


def _protocol_table(results: dict[tuple[str, str], Any], protocols: list[str]) -> Table:
    """Summary per protocol card: full and average mIoU, worst condition, of teacher and student."""
    table = Table(title="every protocol card: average and worst mIoU over its conditions")
    table.add_column("protocol")
    for role in ("teacher", "student"):
        for key in ("avg", "worst"):
            table.add_column(f"{role} {key}", justify="right")
    for name in protocols:
        summaries = [results[role, name].summary for role in ("teacher", "student")]
        table.add_row(name, *(f"{s[key]:.2f}" for s in summaries for key in ("avg", "worst")))
    return table


def _comparison_table(results: dict[tuple[str, str], Any], dataset: str) -> Table:
    """Per-subset mIoU of teacher and student, for both ways of handling a missing sensor."""
    columns = [("teacher", "emm"), ("student", "emm"), ("teacher", "emm-drop"), ("student", "emm-drop")]
    table = Table(title=f"{dataset}/val: mIoU per modality subset (emm: zero-filled, emm-drop: removed)")
    table.add_column("modalities")
    for role, protocol in columns:
        table.add_column(f"{role} ({protocol})", justify="right")
    for key in results["teacher", "emm"].subsets:
        table.add_row(key, *(f"{results[c].subsets[key]['miou']:.2f}" for c in columns))
    table.add_section()
    for key in ("full", "avg", "e0.2", "worst"):
        table.add_row(f"[bold]{key}[/bold]", *(f"{results[c].summary[key]:.2f}" for c in columns))
    return table
