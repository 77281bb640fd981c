"""``rsbench eval``: score a checkpoint under a protocol and write a JSON result record."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from rsbench.console import console
from rsbench.evaluation import EvalResult


def result_table(result: EvalResult, title: str) -> Table:
    """Per-subset mIoU with the protocol's summaries below."""
    table = Table(title=title)
    table.add_column("modalities")
    table.add_column("mIoU", justify="right")
    table.add_column("pixel acc", justify="right")
    for key, scores in result.subsets.items():
        table.add_row(key, f"{scores['miou']:.2f}", f"{scores['pixel_acc']:.2f}")
    table.add_section()
    for key, value in result.summary.items():
        shown = f"{value:.3f}" if key == "relative" else f"{value:.2f}"
        table.add_row(f"[bold]{key}[/bold]", shown, "")
    return table


def eval_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="rsbench checkpoint (last.pt)."),
    protocol: str = typer.Option("full", "--protocol", help="full, all-subsets (alias emm)."),
    split: str = typer.Option("val", "--split", help="Split to evaluate."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Default: the checkpoint's dataset."),
    root: Path | None = typer.Option(None, "--root", help="Folder of the real dataset."),
    fill: str = typer.Option("zero", "--fill", help="Missing inputs: zero (published EMM) or drop."),
    convention: str = typer.Option("nanmean", "--convention", help="mIoU convention: nanmean or zero-absent."),
    batch_size: int = typer.Option(4, "--batch-size"),
    device: str = typer.Option("auto", "--device"),
    out: Path | None = typer.Option(None, "--out", help="Record path (default: next to the checkpoint)."),
) -> None:
    """Evaluate a checkpoint; print per-subset mIoU, mIoU-Avg and mIoU-E(p); write a record."""
    from rsbench.data import create_dataset
    from rsbench.data.transforms import EvalResize
    from rsbench.evaluation import canonical_protocol, evaluate
    from rsbench.results import record_checkpoint_evaluation
    from rsbench.train import load_checkpoint, model_from_checkpoint, pick_device

    ckpt = load_checkpoint(checkpoint)
    protocol = canonical_protocol(protocol)
    model, card = model_from_checkpoint(ckpt)
    name = dataset or ckpt["dataset"]
    transform = EvalResize(card.eval_size) if card.eval_size else None
    ds = create_dataset(name, root=root, split=split, synth=card.synth or None, transform=transform,
                        modalities=tuple(ckpt["modalities"]))
    dev = pick_device(device)
    result = evaluate(model.to(dev), ds, protocol, fill=fill, batch_size=batch_size, device=dev,
                      convention=convention, progress=True)
    path = record_checkpoint_evaluation(result, checkpoint, ckpt, card, name, split, str(dev), out)
    console.print(result_table(result, f"{card.name} on {name}/{split}: {protocol} (fill {fill}, {convention})"))
    console.print(f"record: {path}")
