"""``rsbench demo``: the whole pipeline on generated data in a real dataset's layout.

generate ``deliver-synth`` -> train the teacher (quick profile) -> evaluate with all
modalities and with every modality subset (EMM) -> print per-subset mIoU. A finished run
in the output folder is reused and an interrupted one is resumed, so nothing is lost.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from rsbench.console import console


def demo(
    dataset: str = typer.Option("deliver-synth", "--dataset", "-d", help="A -synth dataset."),
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the run, checkpoint and records."),
    iters: int | None = typer.Option(None, "--iters", help="Override the quick profile's iterations."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Generate data, train a quick teacher, evaluate it full and under missing modalities."""
    from rsbench.cards import load_card
    from rsbench.commands.evaluate import result_table
    from rsbench.data import create_dataset, split_name
    from rsbench.errors import ConfigError
    from rsbench.evaluation import evaluate
    from rsbench.results import record_checkpoint_evaluation
    from rsbench.train import CHECKPOINT_NAME, load_checkpoint, model_from_checkpoint, pick_device, train

    start = time.perf_counter()
    _, synth = split_name(dataset)
    if not synth:
        raise ConfigError(f"the demo runs on generated data: use {dataset}-synth")
    card = load_card("teacher", "quick", {"iters": iters})
    run_dir = out.expanduser() / dataset
    ckpt_path = run_dir / CHECKPOINT_NAME

    with console.status(f"generating {dataset} (cached after the first run) ..."):
        val = create_dataset(dataset, split="val", synth=card.synth or None)
    console.print(f"[bold]1. data[/bold]: {dataset}, modalities {', '.join(val.modalities)}, "
                  f"{val.info.num_classes} classes, {len(val)} val samples")

    state = load_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    same_card = state is not None and state["card"] == card.to_dict()
    if same_card and state.get("complete"):
        console.print(f"[bold]2. teacher[/bold]: reusing {ckpt_path}")
    else:
        console.print(f"[bold]2. teacher[/bold]: training {card.model} for {card.iters} iterations on CPU/GPU")
        res = train(card, dataset, run_dir, resume=same_card, device=device, profile="quick")
        console.print(f"   trained in {res.wall_time_s:.0f} s")

    ckpt = load_checkpoint(ckpt_path)
    model, card = model_from_checkpoint(ckpt)
    dev = pick_device(device)
    console.print("[bold]3. evaluation[/bold]: every modality subset, missing inputs zero-filled (EMM)")
    result = evaluate(model.to(dev), val, "all-subsets", device=dev, progress=True)
    record = record_checkpoint_evaluation(result, ckpt_path, ckpt, card, dataset, "val", str(dev))
    console.print(result_table(result, f"teacher on {dataset}/val: mIoU per modality subset"))
    s = result.summary
    console.print(
        f"With every sensor the teacher scores {s['full']:.1f} mIoU; averaged over the {len(result.subsets)} "
        f"subsets it keeps {s['avg']:.1f} (worst {s['worst']:.1f}). This collapse is what the RobustSeg "
        "student (modality dropout + distillation) is trained to avoid."
    )
    console.print(f"record: {record}")
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")
