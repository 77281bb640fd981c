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


def _summaries(run: Path) -> dict[str, dict[str, float]]:
    """fill -> summary of the EMM records in one demo run folder (every protocol card writes one record)."""
    from rsbench.protocols import builtin_protocols

    records = [json.loads(p.read_text()) for p in (run / "records").glob("*.json")]
    assert sorted(r["protocol"] for r in records) == sorted(set(builtin_protocols()) - {"corruptions"}), records
    return {r["fill"]: r["summary"] for r in records if r["protocol"] in ("emm", "emm-drop")}


@pytest.mark.slow
def test_demo_trains_teacher_and_student_and_the_student_survives_missing_sensors(tmp_path: Path) -> None:
    argv = ["demo", "--out", str(tmp_path), "--iters", "300", "--student-iters", "300", "--device", "cpu"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    teacher = _summaries(tmp_path / "deliver-synth" / "teacher")
    student = _summaries(tmp_path / "deliver-synth" / "robustseg")
    trivial = majority_class_miou("deliver-synth")
    # the teacher learned something, and collapses when sensors are missing
    assert teacher["zero"]["full"] > trivial + 15, (teacher, trivial)
    assert teacher["zero"]["avg"] < teacher["zero"]["full"] - 5
    assert teacher["zero"]["worst"] < teacher["zero"]["full"] / 2
    # the student, trained with modality dropout (drop fusion), keeps a larger share of its
    # full-modality mIoU when sensors are missing (relative robustness = Avg / full)
    assert student["drop"]["full"] > trivial + 15, (student, trivial)
    assert student["drop"]["relative"] > teacher["drop"]["relative"] + 0.05, (student, teacher)
    # a second run reuses both finished stages instead of training again
    again = CliRunner().invoke(app, argv)
    assert again.exit_code == 0 and again.output.count("reusing") == 2, again.output
