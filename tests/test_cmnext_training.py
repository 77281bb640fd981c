"""CMNeXt trains with rsbench's recipes where they apply, through the same loop and CLI (``--model``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rsbench.runs import load_checkpoint, model_from_checkpoint
from tests.test_cli import assert_one_line_error, run

COMMON = ("-d", "deliver-synth", "-p", "quick", "--model", "cmnext_mit_test", "--iters", 4, "--batch-size", 2,
          "--threads", 1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory, synth_cache: Path) -> Path:
    from tests.conftest import cache_env

    out = tmp_path_factory.mktemp("cmnext") / "teacher"
    with cache_env(synth_cache):
        result = run("train", "teacher", *COMMON, "--fill", "zero", "--out", out)
    assert result.exit_code == 0, result.output
    return out / "last.pt"


def test_teacher_checkpoint_is_a_cmnext_with_its_own_head_width(teacher):
    ckpt = load_checkpoint(teacher)
    assert ckpt["card"]["model"] == "cmnext_mit_test" and ckpt["card"]["fill"] == "zero"
    assert ckpt["card"]["embed_dim"] is None  # --model: the model's own default width, not the card's 64
    model, _ = model_from_checkpoint(ckpt)
    assert type(model).__name__ == "CMNeXt" and model.decode_head.linear_fuse.conv.out_channels == 32
    assert ckpt["complete"] and ckpt["iter"] == 4


@pytest.mark.parametrize("method", ["moddrop", "kd"])
def test_students_with_zero_filled_dropout_train_and_change_the_weights(method, teacher, tmp_path):
    out = tmp_path / method
    result = run("train", method, *COMMON, "--fill", "zero", "--stage", "student", "--teacher", teacher, "--out", out)
    assert result.exit_code == 0, result.output
    student = load_checkpoint(out / "last.pt")
    start = load_checkpoint(teacher)["model"]  # students start from scratch with the same seed: compare to it
    assert student["card"]["modality_dropout"] and student["card"]["fill"] == "zero"
    assert any(not torch.equal(v, start[k]) for k, v in student["model"].items() if v.is_floating_point())
    history = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [h for h in history if "loss" in h]
    assert losses and all(torch.isfinite(torch.tensor(h["loss"])) for h in losses)
    if method == "kd":
        assert any("kd" in h for h in losses)


def test_checkpoint_scores_under_emm_and_refuses_emm_drop(teacher, tmp_path):
    out = tmp_path / "emm.json"
    result = run("eval", "--checkpoint", teacher, "--protocol", "emm", "--out", out, "--threads", 1)
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["conditions"]) == 15
    result = run("eval", "--checkpoint", teacher, "--protocol", "emm-drop", "--out", tmp_path / "drop.json")
    assert_one_line_error(result, "model cmnext_mit_test supports fill zero only; protocol emm-drop")
    assert not (tmp_path / "drop.json").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (("moddrop",), "card moddrop asks for fill 'drop'"),
    (("robustseg", "--fill", "zero"), "losses hpdm, rrm need per-stage per-modality features"),
])
def test_recipes_that_cannot_apply_are_refused_when_the_card_is_read(args, needle, tmp_path):
    result = run("train", *args, *COMMON, "--out", tmp_path / "run")
    assert_one_line_error(result, needle)
    assert not (tmp_path / "run").exists()
