"""Options reach the stage the user means: said for each stage, refused where they reach none."""

from __future__ import annotations

import pytest

from tests.conftest import write_card
from tests.test_cli import assert_one_line_error, run


@pytest.fixture
def cards(tmp_path):
    teacher = write_card(tmp_path / "t.yaml")
    student = write_card(tmp_path / "s.yaml", stage="student", teacher=str(teacher), modality_dropout=True,
                         losses={"ohem_ce": 1.0, "kd": 1.0})
    return teacher, student


def test_a_student_card_says_what_each_stage_trains(tmp_path, cards, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the teacher trains into its default folder, runs/ below the working directory
    _, student = cards
    result = run("train", student, "-d", "deliver-synth", "-p", "quick", "--iters", 2, "--teacher-iters", 3,
                 "--seed", 1, "--out", tmp_path / "s", "--threads", 1)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert ("stage 1, teacher card t: 3 iterations (--teacher-iters); stage 2, s: 2 iterations; --iters reaches "
            "stage 2 only; --seed reaches both") in text
    from rsbench.runs import load_checkpoint

    assert load_checkpoint(tmp_path / "s" / "last.pt")["iter"] == 2


@pytest.mark.parametrize(("which", "args", "needle"), [
    ("teacher", ["--teacher", "TEACHER"], "--teacher goes with a student card; card t trains a teacher itself"),
    ("teacher", ["--teacher-iters", "5"], "--teacher-iters goes with a student card; card t is a teacher"),
    ("student", ["--stage", "teacher", "--iters", "5", "--lr", "0.1"],
     "--iters, --lr reach the student, which --stage teacher does not train"),
    ("student", ["--teacher", "TEACHER", "--teacher-iters", "5"],
     "--teacher-iters sets the iterations of the teacher trained here, but --teacher gives one"),
    ("student", ["--teacher-iters", "0"], "--teacher-iters must be a positive integer"),
])
def test_options_that_reach_no_stage_are_refused(tmp_path, cards, which, args, needle):
    card = cards[0] if which == "teacher" else cards[1]
    (tmp_path / "teacher.pt").write_bytes(b"")
    args = [str(tmp_path / "teacher.pt") if a == "TEACHER" else a for a in args]
    result = run("train", card, "-d", "deliver-synth", "-p", "quick", "--out", tmp_path / "run", *args)
    assert_one_line_error(result, needle)
    assert not (tmp_path / "run").exists()
