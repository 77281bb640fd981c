"""Tests for rsbench.metrics: hand-computed cases, torchmetrics agreement, merging, ignore handling."""

from __future__ import annotations

import json
import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist

from rsbench.errors import ConfigError
from rsbench.metrics import (
    MIOU_CONVENTIONS,
    SegmentationMetric,
    SegmentationScores,
    accuracy_per_class,
    confusion_matrix,
    f1_per_class,
    iou_per_class,
    mean_accuracy,
    mean_f1,
    mean_iou,
    pixel_accuracy,
)

tm_cls = pytest.importorskip("torchmetrics.classification")

# 2x3 label map, K=4: class 3 never occurs; the bottom-right pixel is ignored (its prediction must not count).
TARGET = torch.tensor([[0, 0, 1], [1, 2, 255]])
PRED = torch.tensor([[0, 1, 1], [1, 1, 0]])
CM = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])


def random_batch(seed: int, k: int, shape: tuple[int, ...], ignore_frac: float = 0.1, absent: tuple[int, ...] = ()):
    """Seeded (pred, target) with ~ignore_frac ignored pixels and classes ``absent`` missing from both."""
    g = torch.Generator().manual_seed(seed)
    allowed = torch.tensor([c for c in range(k) if c not in absent])
    target = allowed[torch.randint(len(allowed), shape, generator=g)]
    pred = allowed[torch.randint(len(allowed), shape, generator=g)]
    # Make predictions better than chance so IoUs are not all alike.
    keep = torch.rand(shape, generator=g) < 0.6
    pred = torch.where(keep, target, pred)
    target = torch.where(torch.rand(shape, generator=g) < ignore_frac, torch.full_like(target, 255), target)
    return pred, target


def test_confusion_matrix_hand_case():
    cm = confusion_matrix(PRED, TARGET, 4)
    assert cm.dtype == torch.long
    assert torch.equal(cm, CM)


def test_scores_hand_case_both_conventions():
    assert iou_per_class(CM)[:3].tolist() == pytest.approx([50.0, 50.0, 0.0])
    assert math.isnan(iou_per_class(CM)[3])
    assert mean_iou(CM) == pytest.approx(100 / 3)
    assert mean_iou(CM, "nanmean") == pytest.approx(100 / 3)
    assert mean_iou(CM, "zero-absent") == pytest.approx(25.0)
    assert pixel_accuracy(CM) == pytest.approx(60.0)
    assert accuracy_per_class(CM)[:3].tolist() == pytest.approx([50.0, 100.0, 0.0])
    assert mean_accuracy(CM, "nanmean") == pytest.approx(50.0)
    assert mean_accuracy(CM, "zero-absent") == pytest.approx(37.5)
    assert f1_per_class(CM)[:3].tolist() == pytest.approx([200 / 3, 200 / 3, 0.0])
    assert mean_f1(CM, "nanmean") == pytest.approx(400 / 9)
    assert mean_f1(CM, "zero-absent") == pytest.approx(100 / 3)


def test_class_only_in_prediction_counts_as_present():
    # Class 2 is predicted but never labelled: IoU 0 (a false positive), accuracy undefined. Class 1 is absent.
    cm = confusion_matrix(torch.tensor([[0, 2]]), torch.tensor([[0, 0]]), 3)
    assert mean_iou(cm, "nanmean") == pytest.approx(25.0)
    assert mean_iou(cm, "zero-absent") == pytest.approx(50 / 3)
    assert mean_accuracy(cm, "nanmean") == pytest.approx(50.0)
    assert mean_accuracy(cm, "zero-absent") == pytest.approx(50 / 3)


def test_metric_hand_case_and_to_dict():
    metric = SegmentationMetric(4)
    metric.update(PRED[None], TARGET[None])
    s = metric.compute()
    assert isinstance(s, SegmentationScores)
    assert (s.miou, s.pixel_acc, s.mean_acc, s.mean_f1) == pytest.approx((100 / 3, 60.0, 50.0, 400 / 9))
    assert s.convention == "nanmean" and s.num_classes == 4
    d = s.to_dict()
    assert d["per_class_iou"][3] is None
    json.dumps(d, allow_nan=False)
    with pytest.raises(AttributeError):
        s.miou = 0.0  # frozen
    zero = SegmentationMetric(4, convention="zero-absent")
    zero.update(PRED[None], TARGET[None])
    assert zero.compute().miou == pytest.approx(25.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_torchmetrics_all_classes_present(seed):
    k = 6
    pred, target = random_batch(seed, k, (2, 32, 40))
    cm = confusion_matrix(pred, target, k)
    assert (cm.sum(0) + cm.sum(1) > 0).all()
    ref_macro = tm_cls.MulticlassJaccardIndex(k, ignore_index=255, average="macro")(pred, target)
    ref_none = tm_cls.MulticlassJaccardIndex(k, ignore_index=255, average="none")(pred, target)
    for convention in MIOU_CONVENTIONS:
        assert mean_iou(cm, convention) == pytest.approx(100 * ref_macro.item(), abs=1e-4)
    assert iou_per_class(cm).tolist() == pytest.approx((100 * ref_none.double()).tolist(), abs=1e-4)
    ref_cm = tm_cls.MulticlassConfusionMatrix(k, ignore_index=255)(pred, target)
    assert torch.equal(cm, ref_cm.long())


def test_torchmetrics_macro_is_nanmean_and_none_is_zero_absent():
    # torchmetrics' macro average drops classes absent from label and prediction (our "nanmean");
    # average="none" reports them as 0 (zero_division=0), so its plain mean is our "zero-absent".
    k = 7
    pred, target = random_batch(5, k, (3, 24, 24), absent=(2, 6))
    cm = confusion_matrix(pred, target, k)
    ref_macro = tm_cls.MulticlassJaccardIndex(k, ignore_index=255, average="macro")(pred, target).item()
    ref_none = tm_cls.MulticlassJaccardIndex(k, ignore_index=255, average="none")(pred, target).double()
    assert mean_iou(cm, "nanmean") == pytest.approx(100 * ref_macro, abs=1e-4)
    assert mean_iou(cm, "zero-absent") == pytest.approx(100 * ref_none.mean().item(), abs=1e-4)
    assert mean_iou(cm, "zero-absent") < mean_iou(cm, "nanmean")
    ious = iou_per_class(cm)
    assert ious.isnan().tolist() == [c in (2, 6) for c in range(k)]
    assert torch.nan_to_num(ious).tolist() == pytest.approx((100 * ref_none).tolist(), abs=1e-4)


def test_merge_of_halves_equals_whole_and_batches_equal_one_update():
    k = 5
    pred, target = random_batch(3, k, (4, 16, 16))
    whole = SegmentationMetric(k)
    whole.update(pred, target)
    a, b = SegmentationMetric(k), SegmentationMetric(k)
    a.update(pred[:2], target[:2])
    b.update(pred[2:], target[2:])
    assert a.merge(b) is a
    assert torch.equal(a.cm, whole.cm)
    assert a.compute().to_dict() == whole.compute().to_dict()
    two = SegmentationMetric(k)
    for sl in (slice(0, 1), slice(1, 4)):
        two.update(pred[sl], target[sl])
    assert torch.equal(two.cm, whole.cm)
    # Dataset-level, not per-image: the mean of per-half mIoUs differs from the merged mIoU.
    halves = [SegmentationMetric(k), SegmentationMetric(k)]
    halves[0].update(pred[:1], target[:1])
    halves[1].update(pred[1:], target[1:])
    assert sum(h.compute().miou for h in halves) / 2 != pytest.approx(whole.compute().miou, abs=1e-9)


def test_logits_equal_indices():
    k = 4
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, k, 8, 9, generator=g)
    _, target = random_batch(7, k, (2, 8, 9))
    by_logits, by_index = SegmentationMetric(k), SegmentationMetric(k)
    by_logits.update(logits, target)
    by_index.update(logits.argmax(1), target)
    assert torch.equal(by_logits.cm, by_index.cm)
    with pytest.raises(ValueError, match="channels"):
        by_logits.update(torch.randn(2, k + 1, 8, 9), target)


def test_ignore_handling():
    target = torch.tensor([[255, 255], [1, 0]])
    pred = torch.tensor([[1, 1], [1, 1]])
    assert confusion_matrix(pred, target, 2).sum() == 2
    assert confusion_matrix(pred, target, 2)[0, 1] == 1
    # Another ignore value; 255 then is an out-of-range label.
    assert confusion_matrix(pred, torch.tensor([[0, 0], [1, 0]]), 2, ignore_index=0).tolist() == [[0, 0], [0, 1]]
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix(pred, target, 2, ignore_index=None)
    # All pixels ignored: empty matrix, undefined scores, still JSON-safe.
    metric = SegmentationMetric(3)
    metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    s = metric.compute()
    assert metric.cm.sum() == 0 and math.isnan(s.miou) and math.isnan(s.pixel_acc)
    json.dumps(s.to_dict(), allow_nan=False)


def test_uint8_labels_do_not_overflow():
    k = 25
    pred, target = random_batch(11, k, (1, 20, 20))
    ref = confusion_matrix(pred, target, k)
    assert torch.equal(confusion_matrix(pred.to(torch.uint8), target.to(torch.uint8), k), ref)
    assert torch.equal(confusion_matrix(pred.int(), target.short(), k), ref)


@pytest.mark.parametrize(
    "pred, target, match",
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), "predictions"),
        (torch.tensor([0, -1]), torch.tensor([0, 1]), "predictions"),
        (torch.tensor([0, 1]), torch.tensor([0, 3]), "labels"),
        (torch.tensor([0, 1]), torch.tensor([0, -1]), "labels"),
        (torch.tensor([0, 1, 2]), torch.tensor([0, 1]), "shapes"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "dtype"),
        (torch.tensor([0, 1]), torch.tensor([True, False]), "dtype"),
    ],
)
def test_bad_inputs_raise(pred, target, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(pred, target, 3)


def test_bad_config_raises():
    with pytest.raises(ConfigError, match="zero-absent"):
        mean_iou(CM, "mean")
    with pytest.raises(ConfigError):
        SegmentationMetric(4, convention="macro")
    with pytest.raises(ValueError):
        SegmentationMetric(0)
    with pytest.raises(ValueError, match="classes"):
        SegmentationMetric(4).merge(SegmentationMetric(5))


def test_reset_and_state_dict_roundtrip():
    metric = SegmentationMetric(4)
    metric.update(PRED[None], TARGET[None])
    restored = SegmentationMetric(4)
    restored.load_state_dict(metric.state_dict())
    assert torch.equal(restored.cm, CM)
    with pytest.raises(ValueError):
        SegmentationMetric(5).load_state_dict(metric.state_dict())
    metric.reset()
    assert metric.cm.sum() == 0


def test_sync_is_noop_without_distributed_and_sums_with_one_rank():
    metric = SegmentationMetric(4)
    metric.update(PRED[None], TARGET[None])
    assert not dist.is_initialized()
    metric.sync()
    assert torch.equal(metric.cm, CM)
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("gloo", init_method=f"file://{os.path.join(tmp, 'rdzv')}", rank=0, world_size=1)
        try:
            metric.sync()
            assert torch.equal(metric.cm, CM)
            with pytest.raises(RuntimeError):
                metric.sync()
            with pytest.raises(RuntimeError):
                metric.update(PRED[None], TARGET[None])
        finally:
            dist.destroy_process_group()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    k = 6
    pred, target = random_batch(13, k, (2, 64, 64))
    cpu = confusion_matrix(pred, target, k)
    gpu = confusion_matrix(pred.cuda(), target.cuda(), k)
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    metric = SegmentationMetric(k, device="cuda")
    metric.update(torch.randn(2, k, 64, 64, device="cuda"), target.cuda())
    assert metric.cm.device.type == "cuda" and metric.cm.sum() == (target != 255).sum()
    with pytest.raises(ValueError):
        confusion_matrix(pred.cuda() + k, target.cuda(), k)
