"""Files that are not what they claim give one line naming the file, and nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.test_cli import assert_one_line_error, run

RELEASED = Path(__file__).parent / "released"


def _binary_card(tmp: Path) -> list[object]:
    (tmp / "c.yaml").write_bytes(os.urandom(2000) + b"\x00")
    return ["train", tmp / "c.yaml", "-d", "deliver-synth", "-p", "quick", "--out", tmp / "out"]


def _image_card(tmp: Path) -> list[object]:
    (tmp / "c.yaml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return ["train", tmp / "c.yaml", "-d", "deliver-synth", "-p", "quick", "--out", tmp / "out"]


def _garbage_safetensors(tmp: Path) -> list[object]:
    (tmp / "w.safetensors").write_bytes(os.urandom(512))
    return ["eval", "--weights", tmp / "w.safetensors", "--model", "segformer_mit_test", "-d", "deliver-synth",
            "--out", tmp / "r.json"]


def _checkpoint_missing_entries(tmp: Path) -> list[object]:
    torch.save({"model": {}, "card": {}}, tmp / "last.pt")
    return ["eval", "--checkpoint", tmp / "last.pt", "--out", tmp / "r.json"]


@pytest.mark.parametrize(("make", "needle"), [
    (_binary_card, "c.yaml: not a card: a binary file, not YAML text"),
    (_image_card, "c.yaml: not a card: a PNG image, not YAML text"),
    (_garbage_safetensors, "w.safetensors: not a readable .safetensors file"),
    (_checkpoint_missing_entries, "last.pt: not a complete rsbench checkpoint (missing entries: dataset, "
                                  "modalities, num_classes, data_fingerprint)"),
], ids=["binary-card", "image-card", "garbage-safetensors", "checkpoint-missing-entries"])
def test_a_file_that_is_not_what_it_claims_is_named(tmp_path, make, needle):
    args = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_one_line_error(run(*args), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_rsbench_cache_pointing_at_a_file(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("RSBENCH_CACHE", str(tmp_path / "cache"))
    result = run("eval", "--weights", RELEASED / "cmnext_tiny_deliver25.pth", "--model", "cmnext_mit_test", "-d",
                 "deliver-synth", "--out", tmp_path / "r.json")
    assert_one_line_error(result, "is a file, not a folder (generated data is cached there)")
    assert (tmp_path / "cache").read_text() == "not a folder" and not (tmp_path / "r.json").exists()


def test_a_checkpoint_given_to_plot_and_a_binary_json_among_records(tmp_path):
    torch.save({"model": {}, "card": {}}, tmp_path / "last.pt")
    assert_one_line_error(run("plot", tmp_path / "last.pt", "--out", tmp_path / "plots"),
                          "last.pt: a torch checkpoint, not a JSON record")
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "x.json").write_bytes(os.urandom(64) + b"\xff\xfe")
    assert_one_line_error(run("compare", tmp_path / "records"), "x.json: a binary file, not a JSON record")
    assert not (tmp_path / "plots").exists()
