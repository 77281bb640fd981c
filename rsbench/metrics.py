"""Confusion-matrix metrics for semantic segmentation: mIoU, per-class IoU, accuracy, F1.

Benchmark mIoU is a *dataset-level* quantity: every pixel of the split is added to one
``K x K`` confusion matrix (rows = ground truth, columns = prediction) and the scores are
read off that matrix once, at the end. Averaging per-image mIoUs gives a different and
non-comparable number (small or nearly empty images weigh as much as full scenes), which
is why ``torchmetrics.segmentation.MeanIoU`` is not the reference here. A summed int64
matrix also makes the metric exactly mergeable: across batches, workers and ranks
(``all_reduce`` SUM), with no floating-point drift.

All scores are **percentages** (0..100), as benchmark papers report them, everywhere in
this module: the pure functions, :class:`SegmentationScores` and its ``to_dict()``.

Classes absent from both label and prediction (empty row and column) have an undefined
IoU/F1 (0/0); the per-class functions return NaN for them (and accuracy is NaN for classes
absent from the label). Two conventions turn per-class values into a mean:

- ``"nanmean"`` (default): the mean over the classes where the value is defined, i.e. for
  IoU and F1 the classes present in the label or the prediction. This is what mmseg and
  ``torchmetrics.classification.MulticlassJaccardIndex(average="macro")`` do.
- ``"zero-absent"``: undefined values count as 0 in a mean over all K classes. This is what
  the published DELIVER (CMNeXt) and RobustSeg evaluation code does (``nan -> 0``, then
  ``mean``); it equals the mean of torchmetrics' ``average="none"`` (``zero_division=0``).

The two agree whenever every class occurs in the split; on small or filtered splits the
``zero-absent`` number is lower. Records always say which convention produced them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.distributed as dist

from rsbench.errors import ConfigError

MIOU_CONVENTIONS: tuple[str, ...] = ("nanmean", "zero-absent")

__all__ = [
    "MIOU_CONVENTIONS",
    "SegmentationMetric",
    "SegmentationScores",
    "accuracy_per_class",
    "confusion_matrix",
    "f1_per_class",
    "iou_per_class",
    "mean_accuracy",
    "mean_f1",
    "mean_iou",
    "pixel_accuracy",
]


def _check_convention(convention: str) -> str:
    if convention not in MIOU_CONVENTIONS:
        raise ConfigError(f"unknown mIoU convention {convention!r}; choose one of {', '.join(MIOU_CONVENTIONS)}")
    return convention


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """Count (label, prediction) pairs over all pixels.

    Args:
        pred: integer class indices, any shape, on any device.
        target: integer labels, same shape as ``pred``; pixels equal to ``ignore_index`` are skipped.
        num_classes: K.
        ignore_index: label value to skip, or ``None`` to count every pixel.

    Returns:
        ``LongTensor[K, K]`` on the inputs' device; ``cm[t, p]`` = pixels with label t predicted as p.

    Raises:
        ValueError: shapes differ, non-integer dtypes, a prediction outside ``[0, K)``, or a
            label outside ``[0, K)`` that is not ``ignore_index``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    for name, t in (("pred", pred), ("target", target)):
        if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
            raise ValueError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    k = num_classes
    # Cast before any arithmetic: uint8 labels times K would overflow.
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    bad_pred = ((pred < 0) | (pred >= k)).any()
    bad_target = (valid & ((target < 0) | (target >= k))).any()
    bad_pred, bad_target = torch.stack([bad_pred, bad_target]).tolist()  # one device sync
    if bad_pred:
        lo, hi = int(pred.min()), int(pred.max())
        raise ValueError(f"predictions must lie in [0, {k}), got values in [{lo}, {hi}]")
    if bad_target:
        raise ValueError(f"labels must lie in [0, {k}) or equal ignore_index={ignore_index}")
    # Ignored pixels go to an overflow bin K*K that is dropped: no boolean indexing, no sync.
    index = torch.where(valid, target * k + pred, torch.full_like(target, k * k))
    counts = torch.bincount(index, minlength=k * k + 1)
    return counts[: k * k].reshape(k, k)


def _divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``100 * num / den`` in float64, NaN where ``den == 0``."""
    num, den = num.double(), den.double()
    return torch.where(den > 0, 100.0 * num / den.clamp(min=1), torch.full_like(num, math.nan))


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """IoU ``TP / (TP + FP + FN)`` per class, in percent: ``DoubleTensor[K]``, NaN where the union is empty."""
    tp = cm.diagonal()
    return _divide(tp, cm.sum(0) + cm.sum(1) - tp)


def accuracy_per_class(cm: torch.Tensor) -> torch.Tensor:
    """Per-class accuracy (recall) ``TP / (TP + FN)`` in percent: ``DoubleTensor[K]``, NaN where the label lacks it."""
    return _divide(cm.diagonal(), cm.sum(1))


def f1_per_class(cm: torch.Tensor) -> torch.Tensor:
    """F1 (Dice) ``2TP / (2TP + FP + FN)`` per class, in percent: ``DoubleTensor[K]``, NaN where the union is empty."""
    tp = cm.diagonal()
    return _divide(2 * tp, cm.sum(0) + cm.sum(1))


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Correct pixels / counted pixels, in percent; NaN for an empty matrix."""
    return float(_divide(cm.diagonal().sum(), cm.sum()))


def _class_mean(values: torch.Tensor, convention: str) -> float:
    """Mean of per-class values under ``convention`` (NaN marks an undefined class)."""
    _check_convention(convention)
    if convention == "zero-absent":
        return float(torch.nan_to_num(values, nan=0.0).mean())
    return float(values.nanmean())  # NaN if no class is defined at all


def mean_iou(cm: torch.Tensor, convention: str = "nanmean") -> float:
    """Mean IoU in percent from a ``LongTensor[K, K]`` confusion matrix (see the module docstring)."""
    return _class_mean(iou_per_class(cm), convention)


def mean_accuracy(cm: torch.Tensor, convention: str = "nanmean") -> float:
    """Mean per-class accuracy in percent; classes absent from the label are dropped or count as 0."""
    return _class_mean(accuracy_per_class(cm), convention)


def mean_f1(cm: torch.Tensor, convention: str = "nanmean") -> float:
    """Mean per-class F1 in percent; classes absent from label and prediction are dropped or count as 0."""
    return _class_mean(f1_per_class(cm), convention)


@dataclass(frozen=True)
class SegmentationScores:
    """Dataset-level scores, all in percent (0..100). ``per_class_iou`` holds NaN for absent classes."""

    miou: float
    per_class_iou: list[float]
    pixel_acc: float
    mean_acc: float
    mean_f1: float
    convention: str
    num_classes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe copy: NaN becomes ``None``."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return {key: clean(value) for key, value in asdict(self).items()}


class SegmentationMetric:
    """Accumulates an int64 confusion matrix over batches (and ranks) and computes :class:`SegmentationScores`.

    Args:
        num_classes: K.
        ignore_index: label value to skip (``None``: count everything).
        convention: one of :data:`MIOU_CONVENTIONS`, used for mIoU, mean accuracy and mean F1.
        device: where the matrix lives; default CPU. Each batch is counted on its own device
            and only the ``K x K`` result is moved.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        convention: str = "nanmean",
        device: torch.device | str | None = None,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.convention = _check_convention(convention)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=self.device)
        self._synced = False

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` is indices ``[B, H, W]`` or logits ``[B, K, H, W]``; ``target`` is ``[B, H, W]``."""
        if self._synced:
            raise RuntimeError("update() after sync() would mix global and local counts; call reset() first")
        if pred.dim() == target.dim() + 1:
            if pred.shape[1] != self.num_classes:
                raise ValueError(f"logits have {pred.shape[1]} channels, expected num_classes={self.num_classes}")
            pred = pred.argmax(dim=1)
        self.add(confusion_matrix(pred, target, self.num_classes, self.ignore_index))

    def add(self, cm: torch.Tensor) -> None:
        """Add counts already made (``LongTensor[K, K]``, ``cm[t, p]``), e.g. the sum of per-image matrices."""
        if self._synced:
            raise RuntimeError("add() after sync() would mix global and local counts; call reset() first")
        if cm.shape != self.cm.shape:
            raise ValueError(f"confusion matrix of shape {tuple(cm.shape)}, expected {tuple(self.cm.shape)}")
        self.cm += cm.to(self.device, torch.long)

    def compute(self) -> SegmentationScores:
        """Scores of everything counted so far."""
        cm = self.cm
        return SegmentationScores(
            miou=mean_iou(cm, self.convention),
            per_class_iou=iou_per_class(cm).tolist(),
            pixel_acc=pixel_accuracy(cm),
            mean_acc=mean_accuracy(cm, self.convention),
            mean_f1=mean_f1(cm, self.convention),
            convention=self.convention,
            num_classes=self.num_classes,
        )

    def reset(self) -> None:
        """Forget all counts."""
        self.cm.zero_()
        self._synced = False

    def merge(self, other: SegmentationMetric) -> SegmentationMetric:
        """Add ``other``'s counts to this metric (in place) and return ``self``."""
        if not isinstance(other, SegmentationMetric):
            raise TypeError(f"can only merge a SegmentationMetric, got {type(other).__name__}")
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge metrics with {other.num_classes} and {self.num_classes} classes")
        self.cm += other.cm.to(self.device)
        return self

    def sync(self) -> None:
        """Sum the matrix over all ranks (in place) when ``torch.distributed`` is initialised; else no-op.

        Call once, after the last ``update``; a second call before ``reset`` raises, since it would double-count.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return
        if self._synced:
            raise RuntimeError("sync() called twice; counts would be summed again")
        from rsbench.distributed import all_reduce_sum

        all_reduce_sum(self.cm)
        self._synced = True

    def state_dict(self) -> dict[str, Any]:
        """Counts and settings, for resuming an evaluation."""
        return {
            "cm": self.cm.detach().cpu().clone(),
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counts saved by :meth:`state_dict`; settings must match."""
        if state["num_classes"] != self.num_classes or state["ignore_index"] != self.ignore_index:
            raise ValueError(
                f"state is for num_classes={state['num_classes']}, ignore_index={state['ignore_index']}; "
                f"this metric has num_classes={self.num_classes}, ignore_index={self.ignore_index}"
            )
        cm = state["cm"]
        if cm.shape != self.cm.shape or cm.dtype != torch.long:
            raise ValueError(
                f"state confusion matrix must be int64 {tuple(self.cm.shape)}, got {cm.dtype} {tuple(cm.shape)}"
            )
        self.cm.copy_(cm)
