"""Score an rsbench checkpoint under protocol cards: the one path of ``rsbench eval``, the demo and Python.

The checkpoint names its dataset, modality set, evaluation size and generated-data settings; the
data is built from them (``dataset``/``root`` point elsewhere, e.g. the real set for a model trained
on it), the model is rebuilt once, and each protocol writes one record beside the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from rsbench import distributed as dist
from rsbench.data import create_dataset, dataset_class
from rsbench.data.transforms import EvalResize
from rsbench.errors import ConfigError
from rsbench.protocols.card import ProtocolCard
from rsbench.protocols.engine import EvalResult, resolve_card, run_protocol
from rsbench.results import record_checkpoint_evaluation
from rsbench.runs import load_checkpoint, model_from_checkpoint
from rsbench.signals import EvaluationInterrupted, Interrupted, StopSignals, stop_signals


def _check_fits(checkpoint: str | Path, ckpt: dict, name: str) -> None:
    """Refuse, before any data is built, a dataset that lacks the checkpoint's modalities or classes."""
    info = dataset_class(name).info
    mods, classes = list(ckpt["modalities"]), int(ckpt["num_classes"])
    if not set(mods) <= set(info.all_modalities) or classes != info.num_classes:
        raise ConfigError(
            f"{checkpoint} was trained on {ckpt['dataset']} ({', '.join(mods)}; {classes} classes) and cannot be "
            f"scored on {name} ({', '.join(info.all_modalities)}; {info.num_classes} classes)"
        )


def evaluate_checkpoint(
    checkpoint: str | Path,
    protocols: Sequence[str | ProtocolCard] = ("full",),
    *,
    split: str = "val",
    dataset: str | None = None,
    root: str | Path | None = None,
    fill: str | None = None,
    batch_size: int = 4,
    device: str | torch.device = "auto",
    convention: str = "nanmean",
    progress: bool = False,
    write: bool = True,
    out: str | Path | None = None,
) -> list[tuple[EvalResult, Path | None]]:
    """Evaluate ``checkpoint`` under each protocol; returns ``(result, record path or None)`` per protocol.

    ``out``: the record path for one protocol, a folder (``<out>/<protocol>.json``) for several;
    default ``<run>/records/<protocol>-<split>-<time>.json``.

    A stop signal (Ctrl-C, SIGTERM, SIGUSR1, SIGUSR2) ends it at once with
    :class:`rsbench.signals.EvaluationInterrupted`, naming the records written and the protocols left; a
    record being written is finished first (records are whole or absent).
    """
    cards = [resolve_card(p, fill) for p in protocols]
    results: list[tuple[EvalResult, Path | None]] = []
    with stop_signals(raise_at_once=True) as stop:
        try:
            _evaluate(checkpoint, cards, results, stop, split, dataset, root, batch_size, device, convention,
                      progress, write, out)
        except Interrupted as exc:
            written = [str(path) for _, path in results if path is not None]
            raise EvaluationInterrupted(exc.signum, written, [c.name for c in cards[len(results):]]) from None
    return results


def _evaluate(checkpoint: str | Path, cards: list[ProtocolCard], results: list[tuple[EvalResult, Path | None]],
              stop: StopSignals, split: str, dataset: str | None, root: str | Path | None, batch_size: int,
              device: str | torch.device, convention: str, progress: bool, write: bool, out: str | Path | None) -> None:
    ckpt = load_checkpoint(checkpoint)
    model, card = model_from_checkpoint(ckpt)
    name = dataset or ckpt["dataset"]
    _check_fits(checkpoint, ckpt, name)
    transform = EvalResize(card.eval_size, card.eval_resize) if card.eval_size else None
    ds = create_dataset(name, root=root, split=split, synth=card.synth or None, transform=transform,
                        modalities=tuple(ckpt["modalities"]))
    dev = dist.setup(str(device))  # under torchrun: join the group; each rank scores its shard
    model = model.to(dev)
    for pcard in cards:
        result = run_protocol(model, ds, pcard, batch_size=batch_size, device=dev, convention=convention,
                              progress=progress)
        path = None
        with stop.deferred():  # a signal now waits for the record (and its place in ``results``)
            if write and dist.is_primary():  # rank 0 alone writes (it holds the merged counts)
                target = None if out is None else (Path(out) if len(cards) == 1 else Path(out) / f"{pcard.name}.json")
                path = record_checkpoint_evaluation(result, checkpoint, ckpt, card, name, split, str(dev), target)
            results.append((result, path))
