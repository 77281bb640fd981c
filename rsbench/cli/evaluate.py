"""``rsbench eval``: score a checkpoint under a protocol and write a JSON result record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from rsbench.console import add_name_column, console, header_before_output
from rsbench.threads import THREADS_HELP

if TYPE_CHECKING:
    from rsbench.evaluation import EvalResult
    from rsbench.signals import EvaluationInterrupted


def result_table(result: EvalResult, title: str) -> Table:
    """Per-subset mIoU with the protocol's summaries below."""
    table = Table(title=title)
    add_name_column(table, "condition", [*result.subsets, *result.summary])
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
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help="rsbench checkpoint (last.pt)."),
    weights: Path | None = typer.Option(
        None, "--weights", help="A bare state_dict instead (official, mmseg or released RobustSeg layout; "
        "with or without 'module.'); needs --model and --dataset."),
    model_name: str | None = typer.Option(
        None, "--model", help="Model for --weights, e.g. segformer_mit_b0, cmnext_mit_b2 (`rsbench models`)."),
    released: str | None = typer.Option(
        None, "--released", help="A registered released checkpoint (`rsbench models`): its model, modalities "
        "and eval size for --weights."),
    modalities: str | None = typer.Option(
        None, "--modalities", help="For --weights: the file's modalities in its order, comma-separated "
        "(default: the dataset's, or the released entry's)."),
    embed_dim: int | None = typer.Option(
        None, "--embed-dim", help="Decoder width for --weights (default: read from the file's head)."),
    eval_size: int | None = typer.Option(None, "--eval-size", help="Short side for --weights (default: native)."),
    eval_resize: str | None = typer.Option(
        None, "--eval-resize", help="How --eval-size resizes: antialias (the released order under torchvision >= "
        "0.17, the default), bilinear (CMNeXt's torchvision 0.10; the default of its --released entries) or float."),
    protocol: str = typer.Option(
        "full", "--protocol", help="Protocol card(s): full, emm (all-subsets), emm-drop, rmm-25/50/75, "
        "noise-low/mid/high, a path to a card .yaml, a comma-separated list, or all."),
    split: str = typer.Option("val", "--split", help="Split to evaluate."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Default: the checkpoint's dataset."),
    root: Path | None = typer.Option(None, "--root", help="Folder of the real dataset."),
    fill: str | None = typer.Option(None, "--fill", help="Override the card's absent inputs: zero or drop."),
    convention: str = typer.Option("nanmean", "--convention", help="mIoU convention: nanmean or zero-absent."),
    batch_size: int = typer.Option(4, "--batch-size"),
    device: str = typer.Option("auto", "--device"),
    out: Path | None = typer.Option(
        None, "--out", help="Record path (default: next to the checkpoint); with several protocols, a folder."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also write figures here: each record's, and predictions of 3 val samples."),
    threads: int | None = typer.Option(None, "--threads", help=THREADS_HELP),
) -> None:
    """Evaluate a checkpoint; print per-subset mIoU, mIoU-Avg and mIoU-E(p); write a record."""
    from rsbench.data import create_dataset
    from rsbench.data.transforms import EvalResize
    from rsbench.errors import ConfigError
    from rsbench.evaluation import evaluate
    from rsbench.metrics import MIOU_CONVENTIONS
    from rsbench.protocols import resolve_protocols
    from rsbench.protocols.engine import resolve_card
    from rsbench.results import record_weights_evaluation
    from rsbench.runs import pick_device
    from rsbench.signals import EvaluationInterrupted, Interrupted, stop_signals
    from rsbench.threads import apply_threads, choose_threads
    from rsbench.validate import check_dataset_files, check_device, positive_int

    # parse and validate everything before any compute: a bad input fails here, with nothing written
    if (checkpoint is None) == (weights is None):
        raise ConfigError("give exactly one of --checkpoint (an rsbench run) or --weights (a bare state_dict)")
    positive_int("--batch-size", batch_size)
    positive_int("--eval-size", eval_size)
    thread_choice = choose_threads(threads)
    check_device(device)
    if convention not in MIOU_CONVENTIONS:
        raise ConfigError(f"unknown --convention {convention!r} (choose {' or '.join(MIOU_CONVENTIONS)})")
    cards = [resolve_card(c, fill) for c in resolve_protocols(protocol)]
    if weights is not None and dataset is None:
        raise ConfigError("--weights needs --dataset (and --model or --released)")
    if weights is None and (model_name or released or modalities or embed_dim or eval_resize):
        raise ConfigError("--model, --released, --modalities, --embed-dim and --eval-resize go with --weights (a "
                          "checkpoint names its own model and resize)")
    positive_int("--embed-dim", embed_dim)
    source = weights if weights is not None else checkpoint
    if not source.expanduser().is_file():
        raise ConfigError(f"{'weights' if weights is not None else 'checkpoint'} not found: {source}")
    _check_outputs(out, plot, [c.name for c in cards], source.expanduser().parent / "records")
    spec = None
    if weights is not None:
        from rsbench.protocols.weights import resolve_weights_spec

        mods = tuple(m.strip() for m in modalities.split(",") if m.strip()) if modalities else None
        if model_name or released:  # the fill first: it needs no file read
            from rsbench.models.zoo.released import released_checkpoint

            _check_fills(model_name or released_checkpoint(released).model, cards)
        spec = resolve_weights_spec(weights, model_name, released, mods, embed_dim, eval_size, dataset, eval_resize)
        ds = create_dataset(dataset, root=root, split=split, modalities=spec.modalities,
                            transform=EvalResize(spec.eval_size, spec.eval_resize) if spec.eval_size else None,
                            **spec.dataset_options)
    else:
        _check_fills(_checkpoint_model(checkpoint), cards)
        ds = _checkpoint_dataset(checkpoint, dataset, root, split)
    check_dataset_files([ds] if ds is not None else [])
    apply_threads(thread_choice.threads)
    header_before_output(thread_choice.describe())
    dev = pick_device(device)

    if spec is not None:
        from rsbench.protocols.weights import build_weights_model

        model = build_weights_model(spec, weights, ds.modalities, ds.info.num_classes)
        written: list[str] = []
        with stop_signals(raise_at_once=True, exiting=True) as stop:
            try:
                for card in cards:
                    result = evaluate(model.to(dev), ds, card, batch_size=batch_size, device=dev,
                                      convention=convention, progress=True)
                    target = out if out is None or len(cards) == 1 else out / f"{card.name}.json"
                    with stop.deferred():
                        path = record_weights_evaluation(result, weights, spec.model, spec.options(), dataset, split,
                                                         str(dev), target)
                        written.append(str(path))
                    title = (f"{weights.name} ({spec.model}) on {dataset}/{split}: {card.name} (fill {card.fill}, "
                             f"{convention})")
                    console.print(result_table(result, title))
                    console.print(f"record: {path}")
            except Interrupted as exc:
                _interrupted(EvaluationInterrupted(exc.signum, written, [c.name for c in cards[len(written):]]))
        return
    from rsbench.protocols.checkpoint import evaluate_checkpoint

    with stop_signals(raise_at_once=True, exiting=True):  # the one evaluate_checkpoint uses (nested: shared)
        try:
            evaluated = evaluate_checkpoint(checkpoint, cards, split=split, dataset=dataset, root=root,
                                            batch_size=batch_size, device=dev, convention=convention, progress=True,
                                            out=out)
        except EvaluationInterrupted as stop:
            _interrupted(stop)
    for (result, path), pcard in zip(evaluated, cards, strict=True):
        title = f"{checkpoint} on {dataset or 'its dataset'}/{split}: {pcard.name} (fill {pcard.fill}, {convention})"
        console.print(result_table(result, title))
        console.print(f"record: {path}")
    if plot is not None:
        _plots(plot, checkpoint, [(pcard, path) for (_, path), pcard in zip(evaluated, cards, strict=True)], split,
               dataset, root)


def _interrupted(stop: EvaluationInterrupted) -> None:
    """One line: the records written and the protocols left; exit 128 + the signal's number."""
    console.print(str(stop), highlight=False)
    raise typer.Exit(stop.exit_code) from None


def _check_fills(model: str, cards: list) -> None:
    """A protocol fill the model cannot do (``drop`` on CMNeXt) is refused before any data is read."""
    from rsbench.models import MODELS
    from rsbench.models.contract import check_fill, factory_capabilities

    caps = factory_capabilities(MODELS.get(model))
    for card in cards:
        check_fill(caps, card.fill, model, f"protocol {card.name}")


def _checkpoint_model(checkpoint: Path) -> str:
    from rsbench.runs import load_checkpoint

    return str((load_checkpoint(checkpoint).get("card") or {}).get("model", "segformer_mit_b0"))


def _check_outputs(out: Path | None, plot: Path | None, protocols: list[str], default: Path) -> None:
    """Record and figure destinations are writable and no record would be overwritten (creates nothing)."""
    from rsbench.errors import ConfigError
    from rsbench.validate import writable_file, writable_folder

    if out is None:
        writable_folder(default, "record folder")
    elif len(protocols) == 1:
        if writable_file(out).exists():
            raise ConfigError(f"record {out} exists; records are never rewritten (choose another --out)")
    else:
        writable_folder(out)
        taken = [out / f"{name}.json" for name in protocols if (out / f"{name}.json").exists()]
        if taken:
            raise ConfigError(f"record {taken[0]} exists; records are never rewritten (choose another --out)")
    if plot is not None:
        writable_folder(plot, "--plot")


def _checkpoint_dataset(checkpoint: Path, dataset: str | None, root: Path | None, split: str):  # noqa: ANN202
    """The split a checkpoint would be scored on (its dataset and modalities unless ``dataset`` is given)."""
    from rsbench.data import create_dataset
    from rsbench.errors import ConfigError
    from rsbench.runs import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    synth = (ckpt.get("card") or {}).get("synth") or None
    try:
        return create_dataset(dataset or ckpt["dataset"], root=root, split=split, synth=synth,
                              modalities=tuple(ckpt["modalities"]))
    except ConfigError:
        if dataset is None or dataset == ckpt["dataset"]:
            raise
        return None  # the checkpoint does not fit --dataset: evaluate_checkpoint says why, before any compute


def _plots(folder: Path, checkpoint: Path, records: list, split: str, dataset: str | None, root: Path | None) -> None:
    """Each record's figure and a prediction grid per protocol (3 samples, a few of its conditions)."""
    from rsbench.data import create_dataset
    from rsbench.data.transforms import EvalResize
    from rsbench.plots import plot_predictions, plot_record, prediction_conditions
    from rsbench.protocols import conditions
    from rsbench.protocols.engine import predict_conditions
    from rsbench.results import read_record
    from rsbench.runs import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model, card = model_from_checkpoint(ckpt)
    ds = create_dataset(dataset or ckpt["dataset"], root=root, split=split, synth=card.synth or None,
                        transform=EvalResize(card.eval_size, card.eval_resize) if card.eval_size else None,
                        modalities=tuple(ckpt["modalities"]))
    for pcard, record_path in records:
        console.print(f"figure: {plot_record(read_record(record_path), folder / f'{pcard.name}.png')}")
        keys = prediction_conditions([c.key for c in conditions(pcard, model.modalities)])
        samples, preds = predict_conditions(model, ds, pcard, list(range(min(3, len(ds)))), keys)
        grid = plot_predictions(samples, preds, ds.info.num_classes, folder / f"{pcard.name}-predictions.png")
        console.print(f"figure: {grid}")
