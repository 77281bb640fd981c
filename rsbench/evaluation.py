"""Evaluation of any segmentor under a protocol: full modalities or every modality subset.

``evaluate(model, dataset, protocol)`` needs only ``model(modalities, present) -> logits``,
so any ``nn.Module`` can be scored; rsbench's own segmentor additionally gets the fill
semantics passed through. ``all-subsets`` (alias ``emm``, METHOD.md section 5) scores each of
the 2^M - 1 non-empty modality subsets; missing inputs are zero-filled in normalised space
(``fill="zero"``, the published EMM) or removed from the fusion (``fill="drop"``).
For rsbench's own segmentors the modalities are encoded once per batch and only the fusion
and head run per subset (``cache=True``, the default): modality encoders never see each
other, and the features of a zero-filled input are those of one zero image, so this equals
running each subset through the whole model (``cache=False``, the path any external model
takes); a test checks that the two agree.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from rsbench.data import SegmentationDataset
from rsbench.data.transforms import collate
from rsbench.errors import ConfigError
from rsbench.metrics import SegmentationMetric
from rsbench.models import MultiModalSegmentor

PROTOCOLS = {"full": "full", "all-subsets": "all-subsets", "emm": "all-subsets"}
"""Accepted protocol names -> canonical name."""
FILLS = ("zero", "drop")
E_PROBS = (0.2, 0.1, 0.05)


def canonical_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r} (choose from {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]


def modality_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """All non-empty subsets, largest first, each in the model's modality order."""
    out = []
    for k in range(len(modalities), 0, -1):
        out.extend(itertools.combinations(modalities, k))
    return out


def subset_key(subset: Sequence[str]) -> str:
    return "+".join(subset)


def expected_miou(per_subset: dict[str, float], modalities: Sequence[str], p: float) -> float:
    """mIoU-E(p): subsets weighted by the chance p^|missing| (1-p)^|present| of that failure pattern."""
    m = len(modalities)
    num = den = 0.0
    for key, miou in per_subset.items():
        missing = m - len(key.split("+"))
        w = p**missing * (1 - p) ** (m - missing)
        num, den = num + w * miou, den + w
    return num / den


@dataclass
class EvalResult:
    """Scores of one evaluation: per-subset metrics and the protocol's summaries."""

    protocol: str
    fill: str
    convention: str
    modalities: list[str]
    subsets: dict[str, dict[str, Any]]
    summary: dict[str, float]
    wall_time_s: float
    num_samples: int
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(per_subset: dict[str, float], modalities: Sequence[str]) -> dict[str, float]:
    full = per_subset[subset_key(modalities)]
    out = {"full": full}
    if len(per_subset) > 1:
        avg = sum(per_subset.values()) / len(per_subset)
        worst_key = min(per_subset, key=per_subset.get)
        out.update({"avg": avg, "worst": per_subset[worst_key]})
        out.update({f"e{p:g}": expected_miou(per_subset, modalities, p) for p in E_PROBS})
        out["relative"] = avg / full if full else float("nan")
    return out


def _cached_subsets(model: MultiModalSegmentor, mods: dict[str, torch.Tensor], names: Sequence[str],
                    subsets: Sequence[tuple[str, ...]], fill: str):
    """Yield (subset, logits) with every modality encoded once and the zero image encoded once."""
    ref = mods[names[0]]
    b, device = ref.shape[0], ref.device
    feats = model.encode(mods)
    zero = model.encoder(torch.zeros_like(ref[:1])) if fill == "zero" else None
    for s in subsets:
        keep = torch.tensor([n in s for n in model.modalities], dtype=torch.bool, device=device)
        if zero is None:
            chosen = feats
        else:
            mask = keep.view(1, -1, 1, 1, 1)
            chosen = [torch.where(mask, f, z.unsqueeze(1)) for f, z in zip(feats, zero, strict=True)]
        yield s, model.fuse_decode(chosen, keep.expand(b, -1), ref.shape[-2:], missing=fill)


def _apply_subset(model: nn.Module, mods: dict[str, torch.Tensor], names: Sequence[str], subset: Sequence[str],
                  fill: str) -> torch.Tensor:
    b = next(iter(mods.values())).shape[0]
    device = next(iter(mods.values())).device
    present = torch.tensor([n in subset for n in names], dtype=torch.bool, device=device).expand(b, -1)
    if isinstance(model, MultiModalSegmentor):
        return model(mods, present, missing=fill)
    if fill == "zero":
        inputs = {n: (v if n in subset else torch.zeros_like(v)) for n, v in mods.items()}
    else:
        inputs = {n: v for n, v in mods.items() if n in subset}
    return model(inputs, present)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: SegmentationDataset,
    protocol: str = "full",
    fill: str = "zero",
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    convention: str = "nanmean",
    progress: bool = False,
    cache: bool = True,
) -> EvalResult:
    """Score ``model`` on ``dataset`` under ``protocol`` (``full``, ``all-subsets``/``emm``).

    ``cache`` encodes each modality once per batch for rsbench segmentors (see the module doc).
    """
    protocol = canonical_protocol(protocol)
    if fill not in FILLS:
        raise ConfigError(f"unknown fill {fill!r} (choose from {', '.join(FILLS)})")
    names = list(getattr(model, "modalities", dataset.modalities))
    if set(names) != set(dataset.modalities):
        raise ConfigError(f"model modalities {names} differ from the dataset's {list(dataset.modalities)}")
    subsets = [tuple(names)] if protocol == "full" else modality_subsets(names)
    k = dataset.info.num_classes
    device = torch.device(device)
    metrics = {s: SegmentationMetric(k, convention=convention) for s in subsets}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    from rsbench.progress import make_progress

    bar = make_progress() if progress else None
    if bar is not None:
        bar.start()
        task = bar.add_task(f"{protocol} ({len(subsets)} subsets)", total=len(dataset))
    try:
        for batch in loader:
            mods = {n: batch["modalities"][n].to(device) for n in names}
            labels = batch["label"].to(device)
            if cache and isinstance(model, MultiModalSegmentor):
                outputs = _cached_subsets(model, mods, names, subsets, fill)
            else:
                outputs = ((s, _apply_subset(model, mods, names, s, fill)) for s in subsets)
            for s, logits in outputs:
                metrics[s].update(logits.argmax(1), labels)
            if bar is not None:
                bar.advance(task, labels.shape[0])
    finally:
        if bar is not None:
            bar.stop()
        model.train(was_training)
    scores = {subset_key(s): m.compute().to_dict() for s, m in metrics.items()}
    per_subset = {key: v["miou"] for key, v in scores.items()}
    return EvalResult(
        protocol=protocol,
        fill=fill,
        convention=convention,
        modalities=names,
        subsets=scores,
        summary=summarize(per_subset, names),
        wall_time_s=time.perf_counter() - start,
        num_samples=len(dataset),
    )


def evaluate_full(model: nn.Module, dataset: SegmentationDataset, batch_size: int = 4,
                  device: str | torch.device = "cpu") -> float:
    """Full-modality mIoU (nanmean), used for validation during training."""
    return evaluate(model, dataset, "full", batch_size=batch_size, device=device).summary["full"]
