"""The field's checkpoints through the CLI: ``rsbench eval --weights`` on released layouts, ``rsbench models``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from rsbench.models import create_model
from tests.test_cli import assert_one_line_error, run

RELEASED = Path(__file__).parent / "released"
CMNEXT_FILE = RELEASED / "cmnext_tiny_deliver25.pth"  # written by the released code (make_cmnext_values.py)


def _tree(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_eval_weights_on_a_file_in_cmnexts_released_layout(tmp_path):
    out = tmp_path / "emm.json"
    result = run("eval", "--weights", CMNEXT_FILE, "--model", "cmnext_mit_test", "--dataset", "deliver-synth",
                 "--protocol", "emm", "--out", out, "--threads", 1)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert len(record["conditions"]) == 15 and record["fill"] == "zero"
    assert record["card"]["model"] == "cmnext_mit_test" and record["card"]["embed_dim"] == 32  # read from the file


def test_emm_drop_on_cmnext_is_refused_in_one_line_before_compute(tmp_path):
    before = _tree(RELEASED)
    result = run("eval", "--weights", CMNEXT_FILE, "--model", "cmnext_mit_test", "--dataset", "deliver-synth",
                 "--protocol", "emm-drop", "--out", tmp_path / "r.json")
    assert_one_line_error(result, "model cmnext_mit_test supports fill zero only; protocol emm-drop asks for fill "
                                  "'drop'")
    assert list(tmp_path.iterdir()) == [] and _tree(RELEASED) == before


def test_a_file_of_other_modalities_is_refused_naming_the_counts(tmp_path):
    result = run("eval", "--weights", CMNEXT_FILE, "--model", "cmnext_mit_test", "--dataset", "deliver-synth",
                 "--modalities", "rgb,depth", "--out", tmp_path / "r.json")
    assert_one_line_error(result, "holds weights for 4 modalities; deliver-synth gives 2 (rgb, depth)")


def test_eval_released_rgb_only_segformer_b2_file(tmp_path):
    """CMNeXt's RGB-only checkpoints are plain SegFormer-B2s with a 512 head (the mmseg layout)."""
    torch.manual_seed(0)
    b2 = create_model("cmnext_mit_b2", modalities=("rgb",), num_classes=25)
    keys = set(b2.state_dict())
    assert any(k.startswith("decode_head.") for k in keys) and not any("extra_" in k for k in keys)
    torch.save(b2.state_dict(), tmp_path / "cmnext_b2_deliver_rgb.pth")
    out = tmp_path / "full.json"
    result = run("eval", "--released", "cmnext_b2_deliver_rgb", "--weights", tmp_path / "cmnext_b2_deliver_rgb.pth",
                 "--dataset", "deliver-synth", "--protocol", "full", "--eval-size", 64, "--out", out, "--threads", 1)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["modalities"] == ["rgb"] and record["card"]["released"] == "cmnext_b2_deliver_rgb"
    assert record["card"]["embed_dim"] == 512


def test_models_lists_architectures_and_released_checkpoints():
    result = run("models")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for needle in ("cmnext_mit_b2", "segformer_mit_b0", "fills zero", "cmnext_b2_deliver_rgbdel", "66.30",
                   "rsbench eval --released cmnext_b2_deliver_rgbdel --weights cmnext_b2_deliver_rgbdel.pth"):
        assert needle in text, needle


def test_eval_released_anyseg_muses_file_in_the_robustseg_layout(tmp_path):
    """AnySeg's MUSES B0: the released RobustSeg key layout (encoder.*, decoder.*, classifier), 19 classes."""
    from tests.test_released import _released_state_dict

    state = _released_state_dict("module.")
    g = torch.Generator().manual_seed(3)
    embed = state["module.decoder.linear_pred.weight"].shape[1]
    state["module.decoder.linear_pred.weight"] = torch.randn(19, embed, 1, 1, generator=g) * 0.05
    state["module.decoder.linear_pred.bias"] = torch.zeros(19)
    torch.save(state, tmp_path / "anyseg_muses.pth")
    out = tmp_path / "full.json"
    result = run("eval", "--released", "anyseg_b0_muses", "--weights", tmp_path / "anyseg_muses.pth",
                 "--dataset", "muses-synth", "--protocol", "full", "--out", out, "--threads", 1)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["modalities"] == ["frame", "event", "lidar"] and record["card"]["embed_dim"] == 768
    assert record["card"]["dataset_options"] == {"lidar_norm": "minmax", "ignore_to_road": True}  # read as released
