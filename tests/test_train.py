"""Training engine: schedule, cards, resume equality, NaN guard, checkpoint compatibility."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from rsbench.cards import MethodCard, builtin_cards, load_card
from rsbench.errors import ConfigError
from rsbench.runs import load_checkpoint, model_from_checkpoint
from rsbench.training import TrainingError, train
from rsbench.training.log import read_log
from rsbench.training.schedule import lr_factor
from tests.conftest import write_card


def test_lr_schedule_warmup_then_poly() -> None:
    card = MethodCard(name="x", iters=110, warmup_iters=10, warmup_ratio=0.1, poly_power=1.0)
    assert lr_factor(0, card) == pytest.approx(0.1)
    assert lr_factor(5, card) == pytest.approx(0.55)
    assert lr_factor(10, card) == pytest.approx(1.0)
    assert lr_factor(60, card) == pytest.approx(0.5)
    assert lr_factor(109, card) == pytest.approx(0.01)


def test_builtin_teacher_card_profiles() -> None:
    assert "teacher" in builtin_cards()
    paper = load_card("teacher", "paper")
    quick = load_card("teacher", "quick")
    assert paper.model == "segformer_mit_b0" and paper.embed_dim == 768 and paper.crop == 1024
    assert quick.model == "segformer_mit_test" and quick.crop < 128
    # precedence: card < profile < CLI (None means "not given")
    assert load_card("teacher", "quick", {"iters": 7, "lr": None}).iters == 7
    assert load_card("teacher", "quick", {"lr": None}).lr == quick.lr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lerning_rate": 0.1}, "unknown key 'lerning_rate'"),
        ({"lr": "fast"}, "expected a number"),
        ({"iters": 2.5}, "expected an integer"),
        ({"fill": "maybe"}, "not one of"),
        ({"missing": "zero"}, "now called .fill."),
        ({"losses": {"ohem_ce": "one"}}, "expected a number"),
    ],
)
def test_card_rejects_typos_and_wrong_types(tmp_path: Path, change: dict, message: str) -> None:
    path = write_card(tmp_path / "bad.yaml", **change)
    with pytest.raises(ConfigError, match=message):
        load_card(str(path), "quick")


def test_card_unknown_profile_and_method(tiny_card: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        load_card(str(tiny_card), "paper")
    with pytest.raises(ConfigError, match="did you mean teacher"):
        load_card("teachr", "quick")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_resume_gives_the_same_weights(tmp_path: Path, tiny_card: Path) -> None:
    card = load_card(str(tiny_card), "quick")
    full = train(card, "deliver-synth", tmp_path / "full", progress=False)
    train(card, "deliver-synth", tmp_path / "split", progress=False, stop_after=3)
    assert load_checkpoint(tmp_path / "split" / "last.pt")["iter"] == 3
    # a crash after the checkpoint left a line past it and a torn line: resume drops both
    with (tmp_path / "split" / "log.jsonl").open("a") as f:
        f.write('{"iter": 5, "loss": 1.0}\n{"iter": 6, "lo')
    resumed = train(card, "deliver-synth", tmp_path / "split", progress=False, resume=True)
    a, b = _weights(full.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the weights did change during training
    fresh = train(card, "deliver-synth", tmp_path / "short", progress=False, stop_after=1)
    assert any(not torch.equal(a[k], _weights(fresh.checkpoint)[k]) for k in a)
    assert [h["iter"] for h in resumed.history] == [3, 6]
    # the training log of the resumed run is the uninterrupted run's, line for line
    log = read_log(tmp_path / "full")
    assert log == read_log(tmp_path / "split")
    assert [r["iter"] for r in log if "val_miou" in r] == [3, 6]
    assert {"loss", "lr", "ohem_ce"} <= set(log[-1]) and all(math.isfinite(r["loss"]) for r in log)
    assert (tmp_path / "full" / "card.yaml").is_file()
    assert yaml.safe_load((tmp_path / "full" / "card.yaml").read_text())["iters"] == 6


def test_resume_refuses_other_settings(tmp_path: Path, tiny_card: Path) -> None:
    card = load_card(str(tiny_card), "quick")
    train(card, "deliver-synth", tmp_path / "run", progress=False, stop_after=2)
    other = load_card(str(tiny_card), "quick", {"lr": 0.5})
    with pytest.raises(TrainingError, match=r"settings differ \(lr: 0.001 in the checkpoint, 0.5 now\)"):
        train(other, "deliver-synth", tmp_path / "run", progress=False, resume=True)
    with pytest.raises(ConfigError, match="--resume"):
        train(card, "deliver-synth", tmp_path / "run", progress=False)


def test_nan_loss_stops_with_nothing_written(tmp_path: Path, tiny_card: Path) -> None:
    card = load_card(str(tiny_card), "quick", {"lr": 1e30, "warmup_iters": 0})
    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match="loss became"):
        train(card, "deliver-synth", out, progress=False)
    assert not out.exists()


def test_checkpoint_of_another_architecture_is_rejected(tmp_path: Path, tiny_card: Path) -> None:
    card = load_card(str(tiny_card), "quick")
    res = train(card, "deliver-synth", tmp_path / "run", progress=False, stop_after=1)
    ckpt = load_checkpoint(res.checkpoint)
    model, loaded = model_from_checkpoint(ckpt)
    assert loaded == card and not model.training
    ckpt["card"]["embed_dim"] = 32
    with pytest.raises(ConfigError, match="does not fit"):
        model_from_checkpoint(ckpt)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
