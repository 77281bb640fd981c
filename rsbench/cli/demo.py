"""``rsbench demo``: the whole pipeline on generated data in a real dataset's layout.

generate ``deliver-synth`` -> train the teacher (quick profile) -> train the RobustSeg
student from it (quick profile, shorter by default) -> evaluate both under every modality
subset (EMM, missing inputs zero-filled as published, and removed from the fusion) -> print
them side by side. Finished runs in the output folder are reused and interrupted ones
resumed, so nothing is lost; a rerun reuses the records of checkpoints already scored under
the same protocol card instead of writing copies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from rsbench.console import add_name_column, console, header_before_output, status
from rsbench.threads import THREADS_HELP

DEMO_TEACHER_ITERS = 600  # a sixth of the quick profile (3600): the demo must stay a few minutes on a laptop
DEMO_STUDENT_ITERS = 1200  # a third of the quick profile
DEMO_SKIPS = ("corruptions",)
"""Shipped cards the demo leaves out (corruptions: 121 conditions on DELIVER; run it with rsbench eval)."""


def _train_or_reuse(card: Any, dataset: str, run_dir: Path, device: str, teacher: Path | None = None) -> Path:
    """``run_dir/last.pt``, through the stage runner: reused when finished, resumed when interrupted, else trained."""
    from rsbench.training import train_or_reuse

    console.print(f"   {card.model}, {card.iters} iterations -> {run_dir}")
    res = train_or_reuse(card, dataset, run_dir, notify=lambda m: console.print(f"   {m}", highlight=False),
                         teacher=teacher, device=device, profile="quick")
    if res is not None:
        console.print(f"   trained in {res.wall_time_s:.0f} s")
    return run_dir / "last.pt"


def demo(
    dataset: str = typer.Option("deliver-synth", "--dataset", "-d", help="A -synth dataset."),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the runs, checkpoints and records."),
    iters: int = typer.Option(DEMO_TEACHER_ITERS, "--iters", help="Teacher iterations (quick profile: 3600)."),
    student_iters: int = typer.Option(DEMO_STUDENT_ITERS, "--student-iters", help="RobustSeg student iterations."),
    device: str = typer.Option("auto", "--device"),
    threads: int | None = typer.Option(None, "--threads", help=THREADS_HELP),
) -> None:
    """Generate data, train a teacher and a RobustSeg student, compare them under missing modalities."""
    from rsbench.cards import load_card
    from rsbench.cli.compare import comparison_table
    from rsbench.data import create_dataset, split_name
    from rsbench.errors import ConfigError
    from rsbench.leaderboard import compare
    from rsbench.protocols import resolve_protocols
    from rsbench.threads import apply_threads, choose_threads
    from rsbench.validate import check_dataset_files, check_device, positive_int, writable_folder

    start = time.perf_counter()
    _, synth = split_name(dataset)
    if not synth:
        raise ConfigError(f"the demo runs on generated data: use {dataset}-synth")
    positive_int("--iters", iters)
    positive_int("--student-iters", student_iters)
    thread_choice = choose_threads(threads)
    check_device(device)
    writable_folder(out)
    teacher_card = load_card("teacher", "quick", {"iters": iters})
    student_card = load_card("robustseg", "quick", {"iters": student_iters})
    apply_threads(thread_choice.threads)
    header_before_output(thread_choice.describe())

    with status(f"generating {dataset} (cached after the first run) ..."):
        val = create_dataset(dataset, split="val", synth=teacher_card.synth or None)
        check_dataset_files([create_dataset(dataset, split="train", synth=teacher_card.synth or None), val])
    console.print(f"[bold]1. data[/bold]: {dataset}, modalities {', '.join(val.modalities)}, "
                  f"{val.info.num_classes} classes, {len(val)} val samples")
    console.print("[bold]2. teacher[/bold]: all modalities, no dropout")
    teacher_ckpt = _train_or_reuse(teacher_card, dataset, out.expanduser() / dataset / "teacher", device)
    console.print("[bold]3. RobustSeg student[/bold]: modality dropout + KD + HPDM + RRM from the frozen teacher")
    student_ckpt = _train_or_reuse(student_card, dataset, out.expanduser() / dataset / "robustseg", device,
                                   teacher=teacher_ckpt)

    console.print("[bold]4. evaluation[/bold]: EMM (zero-filled and dropped), RMM and noise protocol cards")
    cards = [c for c in resolve_protocols("all") if c.name not in DEMO_SKIPS]
    results: dict[tuple[str, str], dict[str, Any]] = {}
    record_paths = []
    for role, path in (("teacher", teacher_ckpt), ("student", student_ckpt)):
        for record_path, record in _score(path, cards, device):
            results[role, record["protocol"]] = record
            record_paths.append(record_path)
    console.print(_comparison_table(results, dataset))
    console.print(_protocol_table(results, [c.name for c in cards]))
    t, s = results["teacher", "emm"]["summary"], results["student", "emm"]["summary"]
    td, sd = results["teacher", "emm-drop"]["summary"], results["student", "emm-drop"]["summary"]
    console.print(
        f"With every sensor the teacher scores {t['full']:.1f} mIoU and the student {s['full']:.1f}. Averaged over "
        f"the {len(results['teacher', 'emm']['conditions'])} subsets, zero-filled: teacher {t['avg']:.1f}, student "
        f"{s['avg']:.1f}; dropped: teacher {td['avg']:.1f}, student {sd['avg']:.1f}. Records are in "
        f"{out / dataset}/*/records/."
    )
    console.print("[bold]5. compare[/bold]: the records just written, 95 % intervals over the val images "
                  "(rsbench compare RECORDS --baseline teacher)")
    console.print(comparison_table(compare(record_paths, baseline="teacher", n_boot=300), "teacher"))
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")


def _score(checkpoint: Path, cards: list[Any], device: str) -> list[tuple[Path, dict[str, Any]]]:
    """``(record path, record)`` per card: an existing record of this checkpoint under the same card (same
    checkpoint bytes, card digest, split, fill and convention) is reused, the other cards are evaluated."""
    from rsbench.protocols.checkpoint import evaluate_checkpoint
    from rsbench.results import file_sha256, find_records, read_record

    folder = checkpoint.parent / "records"
    sha = file_sha256(checkpoint)
    found = {}
    for path, rec in (find_records([folder]) if folder.is_dir() else []):
        if rec["checkpoint_sha256"] == sha and rec["split"] == "val" and rec["convention"] == "nanmean":
            found.setdefault((rec["protocol_digest"], rec["fill"]), (path, rec))
    todo = [c for c in cards if (c.digest(), c.fill) not in found]
    if len(todo) < len(cards):
        console.print(f"   {len(cards) - len(todo)} records of {checkpoint} already written: read back, none added")
    fresh = iter(evaluate_checkpoint(checkpoint, todo, device=device, progress=True) if todo else [])
    out = []
    for card in cards:
        if card in todo:
            _, path = next(fresh)
            out.append((path, read_record(path)))
        else:
            out.append(found[card.digest(), card.fill])
    return out


def _protocol_table(results: dict[tuple[str, str], dict[str, Any]], protocols: list[str]) -> Table:
    """Summary per protocol card: full and average mIoU, worst condition, of teacher and student."""
    table = Table(title="every protocol card: average and worst mIoU over its conditions")
    add_name_column(table, "protocol", protocols)
    for role in ("teacher", "student"):
        for key in ("avg", "worst"):
            table.add_column(f"{role} {key}", justify="right")
    for name in protocols:
        summaries = [results[role, name]["summary"] for role in ("teacher", "student")]
        table.add_row(name, *(f"{s[key]:.2f}" for s in summaries for key in ("avg", "worst")))
    return table


def _comparison_table(results: dict[tuple[str, str], dict[str, Any]], dataset: str) -> Table:
    """Per-subset mIoU of teacher and student, for both ways of handling a missing sensor."""
    columns = [("teacher", "emm"), ("student", "emm"), ("teacher", "emm-drop"), ("student", "emm-drop")]
    table = Table(title=f"{dataset}/val: mIoU per modality subset (emm: zero-filled, emm-drop: removed)")
    add_name_column(table, "modalities", results["teacher", "emm"]["conditions"])
    for role, protocol in columns:
        table.add_column(f"{role} ({protocol})", justify="right")
    for key in results["teacher", "emm"]["conditions"]:
        table.add_row(key, *(f"{results[c]['conditions'][key]['miou']:.2f}" for c in columns))
    table.add_section()
    for key in ("full", "avg", "e0.2", "worst"):
        table.add_row(f"[bold]{key}[/bold]", *(f"{results[c]['summary'][key]:.2f}" for c in columns))
    return table
