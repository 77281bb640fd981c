"""rsbench's CMNeXt against values the RELEASED CMNeXt code produced (``jamycheung/DELIVER``).

``tests/released/make_cmnext_values.py`` (its docstring holds the command) built the released classes
once, outside the project, and wrote: every state_dict key and shape of CMNeXt-B2 for DELIVER
RGB-D-E-L, MCubeS RGB-A-D-N and RGB only, the parameter counts, and three tiny seeded configurations
(4, 2 and 1 modalities) with their weights in the released key layout and their eval-mode logits on
seeded inputs. rsbench builds the same key sets, loads the tiny files strictly and gives the logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rsbench.errors import ConfigError
from rsbench.models import create_model, load_pretrained
from rsbench.models.checkpoint import checkpoint_modalities, detect_layout, read_state_dict
from rsbench.models.zoo.cmnext import SETTINGS, CMNeXt
from tests.released.make_cmnext_values import tiny_inputs

RELEASED = Path(__file__).parent / "released"
KEYS = json.loads((RELEASED / "cmnext_keys.json").read_text())
VALUES = torch.load(RELEASED / "cmnext_tiny_values.pt", weights_only=True)
DELIVER = ("rgb", "depth", "event", "lidar")
MCUBES = ("rgb", "aolp", "dolp", "nir")


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("case", "modalities", "classes"), [
    ("B2_deliver_rgbdel", DELIVER, 25), ("B2_mcubes_rgbadn", MCUBES, 20), ("B2_rgb", ("rgb",), 25)])
def test_b2_key_set_and_shapes_equal_the_release(case, modalities, classes):
    with torch.device("meta"):
        model = create_model("cmnext_mit_b2", modalities=modalities, num_classes=classes)
    released = {k: shape for k, shape in KEYS["full"][case]["keys"]}
    ours = _shapes(model)
    assert sorted(set(released) - set(ours)) == [] and sorted(set(ours) - set(released)) == []
    assert {k: v for k, v in ours.items() if released[k] != v} == {}


@pytest.mark.parametrize(("name", "modalities", "classes", "case", "published_m"), [
    ("cmnext_mit_b2", DELIVER, 25, "B2_deliver_rgbdel", 58.73),
    ("cmnext_mit_b0", DELIVER, 25, "B0_deliver_rgbdel", 10.31),
    ("cmnext_mit_b2", MCUBES, 20, "B2_mcubes_rgbadn", None),
])
def test_parameter_counts_equal_the_released_model(name, modalities, classes, case, published_m):
    with torch.device("meta"):
        model = create_model(name, modalities=modalities, num_classes=classes)
    n = sum(p.numel() for p in model.parameters())
    assert n == KEYS["full"][case]["n_params"]
    if published_m is not None:  # the CMNeXt paper's figure
        assert round(n / 1e6, 2) == published_m


def _tiny(case: dict, modalities: tuple[str, ...]) -> CMNeXt:
    """The registered test variant is the harness's tiny configuration."""
    assert tuple(tuple(x) for x in case["settings"]) == SETTINGS["test"]
    model = create_model("cmnext_mit_test", modalities=modalities, num_classes=case["num_classes"])
    assert model.decode_head.linear_fuse.conv.out_channels == case["decode_embed"]
    return model


@pytest.mark.parametrize(("key", "modalities"), [("m4", DELIVER), ("m2", DELIVER[:2]), ("m1", ("rgb",))])
def test_tiny_released_weights_load_strictly_and_give_the_released_logits(key, modalities):
    torch.manual_seed(0)
    case = KEYS["tiny"][key]
    model = _tiny(case, modalities).eval()
    assert load_pretrained(model, RELEASED / case["weights_file"]) == []  # strict: nothing left at init
    values = VALUES[key]
    xs = tiny_inputs(values["seed"], len(modalities), values["shape"])
    with torch.no_grad():
        logits = model(dict(zip(modalities, xs, strict=True)))
    torch.testing.assert_close(logits, values["logits"], rtol=0, atol=1e-5)


def test_tiny_zero_filled_modality_equals_the_release_fed_zeros():
    """``present`` without lidar (zero fill) is what the release computes with a zero lidar input."""
    case = KEYS["tiny"]["m4"]
    model = _tiny(case, DELIVER).eval()
    load_pretrained(model, RELEASED / case["weights_file"])
    values = VALUES["m4_zero_last"]
    xs = tiny_inputs(values["seed"], 4, values["shape"])
    with torch.no_grad():
        absent = model(dict(zip(DELIVER, xs, strict=True)), present=["rgb", "depth", "event"])
        fed_zeros = model(dict(zip(DELIVER, [*xs[:3], torch.zeros_like(xs[3])], strict=True)))
    torch.testing.assert_close(absent, values["logits"], rtol=0, atol=1e-5)
    assert torch.equal(absent, fed_zeros)


def test_layout_and_modality_count_are_read_from_the_keys():
    m4 = read_state_dict(RELEASED / "cmnext_tiny_m4.pth")
    m2 = read_state_dict(RELEASED / "cmnext_tiny_m2.pth")
    m1 = read_state_dict(RELEASED / "cmnext_tiny_m1.pth")
    assert detect_layout(m4).name == detect_layout(m2).name == "cmnext"
    assert detect_layout(m1).name == "mmseg"  # an RGB-only CMNeXt is a plain SegFormer layout
    assert checkpoint_modalities(m4) == 4 and checkpoint_modalities(m2) == 2


def test_wrong_modality_count_and_wrong_model_are_refused_naming_them():
    case = KEYS["tiny"]["m4"]
    three = _tiny(case, DELIVER[:3])
    with pytest.raises(ConfigError, match="trained on 4 modalities; the model is built for 3"):
        load_pretrained(three, RELEASED / "cmnext_tiny_m4.pth")
    seg = create_model("segformer_mit_test", modalities=DELIVER, num_classes=5)
    with pytest.raises(ConfigError, match="cmnext_mit"):
        load_pretrained(seg, RELEASED / "cmnext_tiny_m4.pth")
    rgb_only_file_on_four = _tiny(case, DELIVER)
    with pytest.raises(ConfigError, match="RGB-only"):
        load_pretrained(rgb_only_file_on_four, RELEASED / "cmnext_tiny_m1.pth")


def test_a_changed_key_is_named(tmp_path):
    state = read_state_dict(RELEASED / "cmnext_tiny_m4.pth")
    state["backbone.FRMs.0.extra.weight"] = state.pop("backbone.FRMs.0.channel_weights.mlp.0.weight")
    torch.save(state, tmp_path / "bad.pth")
    model = _tiny(KEYS["tiny"]["m4"], DELIVER)
    with pytest.raises(ConfigError, match=r"missing keys: backbone\.FRMs\.0\.channel_weights\.mlp\.0\.weight.*"
                                          r"unexpected keys: backbone\.FRMs\.0\.extra\.weight"):
        load_pretrained(model, tmp_path / "bad.pth")


def test_imagenet_mit_initialises_the_rgb_branch_only(tmp_path):
    """``pretrained``: an ImageNet MiT file sets the RGB branch, as the release's loader does."""
    from rsbench.models import to_official_state_dict

    torch.manual_seed(3)
    mit = create_model("segformer_mit_test").encoder
    torch.save(to_official_state_dict(mit), tmp_path / "mit.pth")
    torch.manual_seed(4)
    with pytest.raises(ConfigError, match="shape mismatches"):  # segformer_mit_test is not CMNeXt-test's width
        create_model("cmnext_mit_test", pretrained=tmp_path / "mit.pth")
    torch.manual_seed(5)
    donor = create_model("cmnext_mit_test", modalities=("rgb",))
    rgb = {k[len("backbone."):]: v for k, v in donor.state_dict().items() if k.startswith("backbone.")}
    torch.save(rgb, tmp_path / "rgb.pth")
    model = create_model("cmnext_mit_test", pretrained=tmp_path / "rgb.pth")
    for k, v in rgb.items():
        assert torch.equal(model.state_dict()["backbone." + k], v)
