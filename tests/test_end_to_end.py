"""The real pipeline, end to end: generate -> train (quick teacher) -> evaluate all subsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rsbench.cli import app
from rsbench.data import create_dataset
from rsbench.metrics import SegmentationMetric


def majority_class_miou(dataset_name: str) -> float:
    """mIoU of the trivial predictor that outputs the most frequent training class everywhere."""
    train = create_dataset(dataset_name, split="train")
    counts = torch.zeros(train.info.num_classes, dtype=torch.long)
    for i in range(len(train)):
        label = torch.from_numpy(train.load_arrays(i)[1])
        counts += torch.bincount(label[label != 255], minlength=train.info.num_classes)
    metric = SegmentationMetric(train.info.num_classes)
    val = create_dataset(dataset_name, split="val")
    for i in range(len(val)):
        label = torch.from_numpy(val.load_arrays(i)[1])
        metric.update(torch.full_like(label, int(counts.argmax())), label)
    return metric.compute().miou


@pytest.mark.slow
def test_demo_trains_a_teacher_that_beats_trivial_and_collapses_without_sensors(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--iters", "300", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    records = list((tmp_path / "deliver-synth" / "records").glob("*.json"))
    assert len(records) == 1
    summary = json.loads(records[0].read_text())["summary"]
    trivial = majority_class_miou("deliver-synth")
    assert summary["full"] > trivial + 15, (summary, trivial)
    assert summary["avg"] < summary["full"] - 5
    assert summary["worst"] < summary["full"] / 2
    # a second run reuses the finished teacher instead of training again
    again = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--iters", "300", "--device", "cpu"])
    assert again.exit_code == 0 and "reusing" in again.output
