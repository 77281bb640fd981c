"""Card values are checked like command-line options: out of range is one line naming the key, before torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rsbench.cards import load_card
from rsbench.errors import ConfigError
from tests.conftest import write_card


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("iters", 0, "'iters' must be an integer in 1..1e9, got 0"),
    ("iters", 10**12, "'iters' must be an integer in 1..1e9"),
    ("lr", float("nan"), "'lr' must be a finite number > 0, got nan"),
    ("lr", float("inf"), "'lr' must be a finite number > 0, got inf"),
    ("batch_size", 0, "'batch_size' must be an integer in 1..65536"),
    ("ckpt_interval", 0, "'ckpt_interval' must be a positive integer"),
    ("val_interval", -3, "'val_interval' must be a positive integer"),
    ("crop", -64, "'crop' must be an integer in 1..16384"),
    ("scale_min", 0.0, "'scale_min' must be a finite number > 0"),
    ("warmup_ratio", 1.5, "'warmup_ratio' must be a number in [0, 1]"),
    ("warmup_iters", -1, "'warmup_iters' must be an integer >= 0"),
    ("seed", 2**64, "'seed' must be an integer in 0..9223372036854775807"),
    ("seed", -1, "'seed' must be an integer in 0.."),
    ("embed_dim", 0, "'embed_dim' must be null or an integer in 1..65536"),
    ("drop_path", 1.0, "'drop_path' must be a number in [0, 1)"),
    ("grad_clip", 0.0, "'grad_clip' must be null or a finite number > 0"),
    ("eval_size", 0, "'eval_size' must be null or an integer in 1..16384"),
    ("num_workers", -1, "'num_workers' must be an integer in 0..256"),
])
def test_out_of_range_card_values_are_refused_naming_the_key(tmp_path, key, value, needle):
    path = write_card(tmp_path / "c.yaml", **{key: value})
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.").replace("+", r"\+")):
        load_card(str(path), "quick")


def test_values_out_of_range_in_a_profile_and_options_too(tmp_path):
    path = write_card(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="option: card key 'iters'"):
        load_card(str(path), "quick", {"iters": 10**10})
    with pytest.raises(ConfigError, match="scale_max 0.5 is below scale_min 0.75"):
        load_card(str(write_card(tmp_path / "d.yaml", scale_min=0.75, scale_max=0.5)), "quick")


def test_every_shipped_card_and_profile_is_in_range():
    from rsbench.cards import builtin_cards

    for name in builtin_cards():
        for profile in ("paper", "quick"):
            load_card(name, profile)


def test_a_bad_card_value_is_answered_before_torch_is_imported(tmp_path):
    path = write_card(tmp_path / "c.yaml", iters=0)
    code = (f"import json, sys\nfrom typer.testing import CliRunner\nfrom rsbench.cli import app\n"
            f"r = CliRunner().invoke(app, ['train', {str(path)!r}, '-d', 'deliver-synth', '-p', 'quick', "
            f"'--out', {str(tmp_path / 'out')!r}])\n"
            "print(json.dumps({'code': r.exit_code, 'out': r.output, 'torch': 'torch' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["code"] == 2 and "card key 'iters' must be an integer in 1..1e9, got 0" in report["out"]
    assert report["torch"] is False and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (("--iters", "1000000000000"), "option: card key 'iters' must be an integer in 1..1e9"),
    (("--seed", str(2**64)), "option: card key 'seed' must be an integer in 0..9223372036854775807"),
    (("--threads", "100000"), "--threads must be a positive integer of at most 1024"),
    (("--embed-dim", "0"), "--embed-dim must be a positive integer"),
])
def test_cli_numbers_that_cannot_work_are_refused(tmp_path, args, needle):
    from tests.test_cli import assert_one_line_error, run

    path = write_card(tmp_path / "c.yaml")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("train", path, "-d", "deliver-synth", "-p", "quick", "--out", tmp_path / "out", *args)
    assert_one_line_error(result, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(("key", "value"), [("iters", 0), ("lr", float("nan")), ("batch_size", 0),
                                            ("ckpt_interval", 0), ("crop", -8)])
def test_cli_card_values_out_of_range_write_nothing(tmp_path, key, value):
    from tests.test_cli import assert_one_line_error, run

    path = write_card(tmp_path / "c.yaml", **{key: value})
    result = run("train", path, "-d", "deliver-synth", "-p", "quick", "--out", tmp_path / "out")
    assert_one_line_error(result, f"card key {key!r} must be")
    assert not (tmp_path / "out").exists()
