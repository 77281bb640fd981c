"""The command line, in-process: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rsbench.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, needle: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rsbench: error:"), result.output
    assert needle in lines[0]


@pytest.mark.parametrize("command", [[], ["data"], ["data", "synth"], ["data", "check"], ["train"], ["eval"], ["demo"]])
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_data_synth_then_check_all_three(tmp_path: Path) -> None:
    for like in ("deliver", "muses", "mcubes"):
        out = tmp_path / f"{like}-data"
        result = run("data", "synth", "--like", like, "--out", out, "--size", 32, "--n-train", 3, "--n-val", 2,
                     "--n-test", 2)
        assert result.exit_code == 0, result.output
        result = run("data", "check", "--dataset", like, "--root", out)
        assert result.exit_code == 0, result.output
        assert "no problems found" in result.output


def test_data_check_reports_problems_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "d"
    assert run("data", "synth", "--like", "deliver", "--out", out, "--size", 32, "--n-train", 3).exit_code == 0
    victim = sorted((out / "lidar").rglob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated PNG
    result = run("data", "check", "--dataset", "deliver", "--root", out)
    assert result.exit_code == 1
    assert "problems" in result.output and "truncated" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["data", "check", "--dataset", "delivr", "--root", "."], "did you mean deliver"),
        (["data", "check", "--dataset", "deliver", "--root", "/nonexistent/DELIVER"], "deliver-synth"),
        (["data", "synth", "--like", "kitti", "--out", "x"], "unknown dataset"),
        (["train", "teachr", "--dataset", "deliver-synth"], "unknown method"),
        (["train", "teacher", "--dataset", "deliver-synth", "--profile", "fast"], "unknown profile"),
        (["train", "teacher", "--dataset", "cityscapes"], "unknown dataset"),
        (["eval", "--checkpoint", "/nonexistent/last.pt"], "checkpoint not found"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                  needle: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert_one_line_error(result, needle)
    assert list(tmp_path.iterdir()) == [], "nothing may be written on bad input"


def test_synth_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    result = run("data", "synth", "--like", "mcubes", "--out", tmp_path)
    assert_one_line_error(result, "not an empty folder")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_train_then_eval_all_subsets_writes_a_record(tmp_path: Path, tiny_card: Path) -> None:
    out = tmp_path / "run"
    result = run("train", tiny_card, "--dataset", "deliver-synth", "--profile", "quick", "--out", out)
    assert result.exit_code == 0, result.output
    record_path = tmp_path / "emm.json"
    result = run("eval", "--checkpoint", out / "last.pt", "--protocol", "emm", "--out", record_path)
    assert result.exit_code == 0, result.output
    record = json.loads(record_path.read_text())
    assert record["protocol"] == "emm" and record["fill"] == "zero" and record["protocol_card"]["kind"] == "subsets"
    assert len(record["conditions"]) == 15
    assert {"full", "avg", "worst", "e0.2", "e0.1", "e0.05"} <= set(record["summary"])
    assert len(record["checkpoint_sha256"]) == 64 and record["synthetic"] and record["per_image"] == "emm.npz"
    from rsbench.results import read_per_image

    counts = read_per_image(record_path)
    inter, union = counts["rgb+depth+event+lidar"]
    assert len(counts) == 15 and inter.shape == union.shape == (record["num_samples"], 25)
    # the dataset-level IoU is recomputed from the per-image counts alone
    per_class = inter.sum(0) / np.maximum(union.sum(0), 1)
    saved = record["conditions"]["rgb+depth+event+lidar"]["per_class_iou"]
    assert all(v is None or abs(100 * per_class[c] - v) < 1e-6 for c, v in enumerate(saved))
    # records are never rewritten
    again = run("eval", "--checkpoint", out / "last.pt", "--out", record_path)
    assert_one_line_error(again, "never rewritten")


def test_student_stage_without_a_finished_teacher_is_a_clear_error(tmp_path: Path, tiny_card: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import write_card

    student = write_card(tmp_path / "student.yaml", stage="student", teacher=str(tiny_card), modality_dropout=True,
                         losses={"ohem_ce": 1.0, "kd": 1.0})
    monkeypatch.chdir(tmp_path)
    result = run("train", student, "--dataset", "deliver-synth", "--profile", "quick", "--stage", "student")
    assert_one_line_error(result, "no finished teacher")
    assert not (tmp_path / "runs").exists()
