"""One engine for every protocol: a card's conditions, one loop over the data, one metric bank.

``run_protocol(model, dataset, card)`` needs only ``model(modalities, present) -> logits``, so any
``nn.Module`` can be scored (the naive path: one forward per condition). The engine asks the model
what it offers (``rsbench.models.contract``), never its type: a fill it does not support is refused
before any data is read, and a model that declares itself ``separable`` (the shared-encoder
segmentor) has its modalities encoded once per batch; a changed input (RMM mask, noise) is
encoded once per batch and modality and reused by every condition that holds it (its draws do
not depend on the condition: common random numbers); the zero-filled input is encoded once per
call. Only the fusion and head run per condition. Modality encoders never see each other, so
this equals the naive path (a test checks it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from rsbench import distributed as dist
from rsbench.data import SegmentationDataset
from rsbench.data.sampler import shard_indices
from rsbench.data.transforms import collate
from rsbench.errors import ConfigError
from rsbench.metrics import SegmentationMetric, confusion_matrix
from rsbench.models.contract import capabilities_of, check_fill, declares, model_label, scored_logits
from rsbench.models.folded import FoldedHead, walk_order
from rsbench.protocols.card import ProtocolCard, load_protocol
from rsbench.protocols.conditions import Condition, conditions
from rsbench.protocols.perturb import apply_change
from rsbench.protocols.summary import summarize_conditions

FILLS = ("zero", "drop")


@dataclass
class EvalResult:
    """Scores of one evaluation: per-condition metrics and the protocol's summaries."""

    protocol: str
    fill: str
    convention: str
    modalities: list[str]
    subsets: dict[str, dict[str, Any]]
    """Per-condition scores (for subset protocols the key names the intact modalities)."""
    summary: dict[str, float]
    wall_time_s: float
    num_samples: int
    extra: dict[str, Any] = field(default_factory=dict)


class _Indexed(Dataset):
    """The dataset's samples with their index, which seeds every per-sample draw."""

    def __init__(self, dataset: SegmentationDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[dict, int]:
        return self.dataset[i], i


def _collate(items: list[tuple[dict, int]]) -> tuple[dict, list[int]]:
    return collate([s for s, _ in items]), [i for _, i in items]


def resolve_card(protocol: str | ProtocolCard, fill: str | None) -> ProtocolCard:
    card = protocol if isinstance(protocol, ProtocolCard) else load_protocol(protocol)
    if fill is not None:
        if fill not in FILLS:
            raise ConfigError(f"unknown fill {fill!r} (choose from {', '.join(FILLS)})")
        card = replace(card, fill=fill)
    return card


class _Batch:
    """One batch's inputs, changed inputs and (for rsbench segmentors) encoded features, each made once."""

    def __init__(self, model: nn.Module, mods: dict[str, Tensor], ids: list[int], names: Sequence[str],
                 card: ProtocolCard, zero_feats: list[Tensor] | None) -> None:
        self.model, self.mods, self.ids, self.names, self.card = model, mods, ids, list(names), card
        self.zero_feats = zero_feats
        self._inputs: dict[tuple[str, str], Tensor] = {}
        self._feats: dict[tuple[str, str], list[Tensor]] = {}
        self._clean: list[Tensor] | None = None
        self._terms: dict[tuple[str, str | None], Tensor] = {}

    def input(self, name: str, kind: str | None) -> Tensor:
        if kind is None:
            return self.mods[name]
        if (kind, name) not in self._inputs:
            idx = self.names.index(name)
            self._inputs[kind, name] = apply_change(kind, self.mods[name], self.ids, idx, name, self.card)
        return self._inputs[kind, name]

    def features(self, name: str, kind: str | None) -> list[Tensor]:
        """Per stage ``[B, C, h, w]`` of one modality's (possibly changed) input."""
        if kind is None:
            if self._clean is None:
                self._clean = self.model.encode(self.mods)
            idx = self.names.index(name)
            return [f[:, idx] for f in self._clean]
        if (kind, name) not in self._feats:
            self._feats[kind, name] = self.model.encode_one(self.input(name, kind))
        return self._feats[kind, name]


    def term(self, folded: FoldedHead, name: str, kind: str | None) -> Tensor:
        """The folded pre-activation term of one modality's (possibly changed) input, made once."""
        if (name, kind) not in self._terms:
            self._terms[name, kind] = folded.term(self.features(name, kind))
        return self._terms[name, kind]


def _choices(cond: Condition, slots: Sequence[str]) -> tuple:
    """Per slot: ``None`` (absent), ``"clean"`` or the input change applied."""
    kinds = _changes(cond)
    return tuple((kinds.get(n) or "clean") if n in cond.present else None for n in slots)


class _FoldedWalk:
    """Logits of every condition from a running sum of per-slot terms, walked in ``walk_order``.

    Zero fill: with ``T'(slot) = T(slot) - Z`` (Z: the zero-filled input's term), a condition's
    pre-activation is ``sum_present T' / M + Z``, so absent slots cost nothing and the constant
    ``Z`` folds into the BatchNorm shift. Drop fill: ``sum_present T / |present|``.
    """

    def __init__(self, folded: FoldedHead, conds: Sequence[Condition], slots: Sequence[str], fill: str) -> None:
        self.folded, self.fill, self.slots = folded, fill, list(slots)
        self.choices = [_choices(c, slots) for c in conds]
        self.order = walk_order(self.choices)

    def run(self, batch: _Batch, conds: Sequence[Condition]):
        ref = batch.mods[batch.names[0]]
        folded, m = self.folded, len(self.slots)
        zero = folded.zero_term(batch.model, ref) if self.fill == "zero" else None
        terms: dict[tuple[str, str], Tensor] = {}

        def term(slot: str, choice: str) -> Tensor:
            if (slot, choice) not in terms:
                t = batch.term(folded, slot, None if choice == "clean" else choice)
                terms[slot, choice] = t - zero if zero is not None else t
            return terms[slot, choice]

        total, current = None, (None,) * m
        for i in self.order:
            want = self.choices[i]
            for slot, old, new in zip(self.slots, current, want, strict=True):
                if old == new:
                    continue
                if old is not None:
                    total.sub_(term(slot, old))
                if new is not None:
                    if total is None:
                        total = term(slot, new).clone()
                    else:
                        total.add_(term(slot, new))
            current = want
            if zero is not None:
                mult, add = folded.scale / m, zero * folded.scale + folded.shift
            else:
                mult, add = folded.scale / sum(c is not None for c in want), folded.shift
            yield conds[i], folded.logits_affine(total, mult, add, ref.shape[-2:])


def _changes(cond: Condition) -> dict[str, str]:
    return {c.modality: c.kind for c in cond.changes}


def _cached_logits(batch: _Batch, cond: Condition, fill: str) -> Tensor:
    model, names = batch.model, batch.names
    ref = batch.mods[names[0]]
    b = ref.shape[0]
    kinds = _changes(cond)
    per_slot = []
    for n in model.modalities:
        if n in cond.present:
            per_slot.append(batch.features(n, kinds.get(n)))
        elif fill == "zero":
            per_slot.append([z.expand(b, *z.shape[1:]) for z in batch.zero_feats])
        else:  # dropped from the fusion: any features of the right shape (masked out)
            per_slot.append(batch.features(n, None))
    feats = [torch.stack([slot[j] for slot in per_slot], dim=1) for j in range(len(per_slot[0]))]
    present = torch.tensor([n in cond.present for n in model.modalities], device=ref.device).expand(b, -1)
    return model.fuse_decode(feats, present, ref.shape[-2:], fill=fill)


def _naive_logits(batch: _Batch, cond: Condition, fill: str) -> Tensor:
    model, names = batch.model, batch.names
    ref = batch.mods[names[0]]
    kinds = _changes(cond)
    present = torch.tensor([n in cond.present for n in names], device=ref.device).expand(ref.shape[0], -1)
    if fill == "zero":
        inputs = {n: batch.input(n, kinds.get(n)) if n in cond.present else torch.zeros_like(batch.mods[n])
                  for n in names}
    else:
        inputs = {n: batch.input(n, kinds.get(n)) for n in names if n in cond.present}
    if declares(model):
        return scored_logits(model, model(inputs, present, fill=fill))
    return scored_logits(model, model(inputs, present))


def check_model_fill(model: nn.Module, card: ProtocolCard) -> None:
    """A protocol's fill the model cannot do is refused in one line, before any data is read."""
    check_fill(capabilities_of(model), card.fill, model_label(model), f"protocol {card.name}")


def per_image_confusion(pred: Tensor, labels: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """One confusion matrix per image, ``[B, K, K]`` (``rsbench.metrics.confusion_matrix``: labels checked).

    The metric bank adds their sum and the record keeps each image's intersections and unions, so
    every image is counted once.
    """
    return torch.stack([confusion_matrix(p, t, num_classes, ignore_index) for p, t in zip(pred, labels, strict=True)])


def intersections_unions(cms: Tensor) -> tuple[Tensor, Tensor]:
    """Per image and class: intersection and union pixel counts (int32 ``[B, K]`` each)."""
    inter = cms.diagonal(dim1=1, dim2=2)
    return inter.int().cpu(), (cms.sum(1) + cms.sum(2) - inter).int().cpu()


def _argmax(logits: Tensor) -> Tensor:
    """Class map; the reduction over classes is ~3x faster on the CPU with channels innermost."""
    return logits.contiguous(memory_format=torch.channels_last).argmax(1)


def _check_logits(logits: Tensor, labels: Tensor, num_classes: int, condition: str, finite: bool = True) -> None:
    want = (labels.shape[0], num_classes, *labels.shape[-2:])
    if logits.dim() != 4 or tuple(logits.shape) != want:
        raise ConfigError(f"the model returned logits of shape {tuple(logits.shape)}; expected {want} "
                          f"(batch, {num_classes} classes, label height, width)")
    if finite and not bool(torch.isfinite(logits).all()):  # argmax would score NaN as a class silently
        bad = int((~torch.isfinite(logits)).sum())
        raise ConfigError(f"the model returned {bad} NaN or infinite logits under condition {condition}; "
                          "rsbench scores finite logits only")


def check_model_type(model: Any) -> None:
    """Anything but an ``nn.Module`` is refused naming the contract (a plain function has no eval mode)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"rsbench scores a torch.nn.Module whose forward(modalities, present) returns logits "
                          f"[B, K, H, W]; got {type(model).__name__} (wrap a function in an nn.Module)")


@torch.no_grad()
def run_protocol(
    model: nn.Module,
    dataset: SegmentationDataset,
    protocol: str | ProtocolCard = "full",
    fill: str | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    convention: str = "nanmean",
    progress: bool = False,
    cache: bool = True,
    num_workers: int = 0,
    check_finite: bool = True,
) -> EvalResult:
    """Score ``model`` on ``dataset`` under a protocol card (name, alias, path or card).

    ``fill`` overrides the card's handling of absent modalities; ``cache`` (models that declare
    ``separable``) encodes each modality once per batch instead of running the whole model per condition;
    ``check_finite`` refuses NaN or infinite logits naming the condition (training's validation turns it off).
    """
    check_model_type(model)
    card = resolve_card(protocol, fill)
    check_model_fill(model, card)
    names = list(getattr(model, "modalities", dataset.modalities))
    if set(names) != set(dataset.modalities):
        raise ConfigError(f"model modalities {names} differ from the dataset's {list(dataset.modalities)}")
    conds = conditions(card, names)
    k = dataset.info.num_classes
    device = torch.device(device)
    bank = {c.key: SegmentationMetric(k, convention=convention) for c in conds}
    per_image: dict[str, list[tuple[Tensor, Tensor]]] = {c.key: [] for c in conds}
    sample_ids: list[int] = []
    indexed: Dataset = _Indexed(dataset)
    if dist.active():  # this rank's exact share: every sample once over the ranks, none padded
        indexed = Subset(indexed, shard_indices(len(dataset), dist.rank(), dist.world_size()))
    loader = DataLoader(indexed, batch_size=batch_size, shuffle=False, collate_fn=_collate, num_workers=num_workers)
    cached = cache and capabilities_of(model).separable
    was_training = model.training
    model.eval()
    # one condition without input changes (``full``) is the model's ordinary forward
    cached = cached and not (len(conds) == 1 and not conds[0].changes)
    folded: FoldedHead | None = model.folded_head() if cached else None
    walk = _FoldedWalk(folded, conds, model.modalities, card.fill) if folded is not None else None
    start = time.perf_counter()
    zero_feats = None
    bar = _progress(progress and dist.is_primary(), f"{card.name} ({len(conds)} conditions)", len(dataset))
    try:
        for sample, ids in _iterate(loader, bar):
            mods = {n: sample["modalities"][n].to(device) for n in names}
            labels = sample["label"].to(device)
            if cached and folded is None and card.fill == "zero" and zero_feats is None:
                zero_feats = model.encode_one(torch.zeros_like(mods[names[0]][:1]))
            batch = _Batch(model, mods, ids, names, card, zero_feats)
            if walk is not None:
                outputs = walk.run(batch, conds)
            elif cached:
                outputs = ((c, _cached_logits(batch, c, card.fill)) for c in conds)
            else:
                outputs = ((c, _naive_logits(batch, c, card.fill)) for c in conds)
            for cond, logits in outputs:
                _check_logits(logits, labels, k, cond.key, check_finite)
                cms = per_image_confusion(_argmax(logits), labels, k)
                bank[cond.key].add(cms.sum(0))
                per_image[cond.key].append(intersections_unions(cms))
            sample_ids.extend(ids)
    finally:
        if bar is not None:
            bar.stop()
        model.train(was_training)
    empty = torch.zeros(0, k, dtype=torch.int32)  # a rank whose shard is empty
    per_image_cat = {key: (torch.cat([i for i, _ in v]), torch.cat([u for _, u in v])) if v else (empty, empty)
                     for key, v in per_image.items()}
    if dist.active():
        for m in bank.values():
            m.sync()
        sample_ids, per_image_cat = _gather_per_image(sample_ids, per_image_cat)
    scores = {key: m.compute().to_dict() for key, m in bank.items()}
    summary = summarize_conditions(card.kind, {key: v["miou"] for key, v in scores.items()}, conds, names)
    return EvalResult(protocol=card.name, fill=card.fill, convention=convention, modalities=names, subsets=scores,
                      summary=summary, wall_time_s=time.perf_counter() - start, num_samples=len(dataset),
                      extra={"protocol_card": card.to_dict(), "protocol_digest": card.digest(),
                             "per_image": {"sample_index": sample_ids, **per_image_cat}})


def _gather_per_image(ids: list[int], per_image: dict[str, tuple[Tensor, Tensor]]
                      ) -> tuple[list[int], dict[str, tuple[Tensor, Tensor]]]:
    """Every rank's per-image counts, in sample order (the order one process gives)."""
    parts = dist.all_gather_objects((ids, {k: (i.cpu(), u.cpu()) for k, (i, u) in per_image.items()}))
    all_ids = [i for part_ids, _ in parts for i in part_ids]
    order = torch.tensor(sorted(range(len(all_ids)), key=all_ids.__getitem__))
    merged = {key: tuple(torch.cat([p[1][key][j] for p in parts])[order] for j in (0, 1)) for key in per_image}
    return sorted(all_ids), merged  # type: ignore[return-value]


@torch.no_grad()
def predict_conditions(model: nn.Module, dataset: SegmentationDataset, protocol: str | ProtocolCard,
                       indices: Sequence[int], keys: Sequence[str] | None = None,
                       device: str | torch.device = "cpu") -> tuple[list[dict], dict[str, list[Tensor]]]:
    """The samples ``indices`` and the class maps under the protocol's conditions ``keys`` (default: all)."""
    card = resolve_card(protocol, None)
    check_model_fill(model, card)
    names = list(getattr(model, "modalities", dataset.modalities))
    conds = [c for c in conditions(card, names) if keys is None or c.key in keys]
    samples = [dataset[i] for i in indices]
    batch_in = collate(samples)
    mods = {n: batch_in["modalities"][n].to(device) for n in names}
    was_training = model.training
    model.eval()
    try:
        cached = capabilities_of(model).separable
        zero = model.encode_one(torch.zeros_like(mods[names[0]][:1])) if cached and card.fill == "zero" else None
        batch = _Batch(model, mods, list(indices), names, card, zero)
        preds = {}
        for cond in conds:
            logits = _cached_logits(batch, cond, card.fill) if cached else _naive_logits(batch, cond, card.fill)
            preds[cond.key] = list(_argmax(logits).cpu())
    finally:
        model.train(was_training)
    return samples, preds


def _progress(enabled: bool, title: str, total: int) -> Any:
    if not enabled:
        return None
    from rsbench.progress import make_progress

    bar = make_progress()
    bar.start()
    bar.task = bar.add_task(title, total=total)
    return bar


def _iterate(loader: DataLoader, bar: Any) -> Iterator[tuple[dict, list[int]]]:
    for sample, ids in loader:
        yield sample, ids
        if bar is not None:
            bar.advance(bar.task, len(ids))
