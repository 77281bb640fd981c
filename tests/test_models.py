"""Models: registry, shapes, param counts, checkpoints, shared encoder, encode-once == forward."""

from __future__ import annotations

import itertools

import pytest
import timm
import torch

from rsbench.errors import ConfigError
from rsbench.models import (
    ENCODERS,
    MultiModalSegmentor,
    TimmEncoder,
    create_model,
    list_models,
    load_pretrained,
    to_official_state_dict,
)

MODS4 = ("rgb", "depth", "event", "lidar")
CHEAP = {"segformer_mit_test", "segformer_mit_b0", "segformer_timm"}
# SegFormer paper, Table 1 (encoder parameters, millions)
PUBLISHED_M = {"mit_b0": 3.4, "mit_b1": 13.1, "mit_b2": 24.2, "mit_b3": 44.0, "mit_b4": 60.8, "mit_b5": 81.4}


def _inputs(names, b=2, h=64, w=48, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(b, 3, h, w, generator=g) for n in names}


def _tiny(**kw) -> MultiModalSegmentor:
    torch.manual_seed(0)
    kw = {"modalities": MODS4, "num_classes": 5, **kw}
    return create_model("segformer_mit_test", **kw).eval()


def _nparams(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ----------------------------------------------------------------------------- registry


def test_registry_lists_variants():
    names = list_models()
    assert {f"segformer_mit_b{i}" for i in range(6)} | {"segformer_mit_test", "segformer_timm"} <= set(names)
    assert list_models("segformer_mit_b*") == [f"segformer_mit_b{i}" for i in range(6)]


def test_unknown_model_and_option_raise_config_error():
    with pytest.raises(ConfigError, match="segformer_mit_b0"):
        create_model("segformer_mit_bo")
    with pytest.raises(ConfigError, match="colour"):
        create_model("segformer_mit_test", colour="red")
    with pytest.raises(ConfigError, match="fill"):
        create_model("segformer_mit_test", fill="mean")


def test_create_model_drops_none_kwargs():
    m = create_model("segformer_mit_test", modalities=("rgb",), num_classes=3, embed_dim=None, fill=None)
    assert m.head.linear_pred.out_channels == 3 and m.fill == "drop"
    assert m.head.linear_c1.proj.out_features == 32


@pytest.mark.parametrize("name", list_models("segformer_*"))
def test_every_variant_output_shape(name):
    """Cheap variants run for real; the big ones on the meta device (shapes only, no memory)."""
    kw = {"modalities": ("rgb", "depth"), "num_classes": 7}
    x = _inputs(kw["modalities"], h=64, w=48)
    if name in CHEAP:
        model = create_model(name, **kw).eval()
        with torch.no_grad():
            out = model(x)
        assert torch.isfinite(out).all()
        assert out.shape == (2, 7, 64, 48)
    else:  # data-dependent checks (present masks) cannot run on meta: encoder + head only
        with torch.device("meta"):
            model = create_model(name, **kw).eval()
            feats = model.encode({k: v.to("meta") for k, v in x.items()})
            out = model.head([f.mean(dim=1) for f in feats])
        assert [tuple(f.shape[:2]) for f in feats] == [(2, 2)] * 4
        assert out.shape == (2, 7, 16, 12)


# ----------------------------------------------------------------------------- MiT encoder


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_mit_param_counts_match_paper(name):
    with torch.device("meta"):
        enc = ENCODERS.get(name)()
    assert _nparams(enc) / 1e6 == pytest.approx(PUBLISHED_M[name], rel=0.03)


def test_mit_b0_b2_param_counts_within_2_percent():
    with torch.device("meta"):
        b0, b2 = ENCODERS.get("mit_b0")(), ENCODERS.get("mit_b2")()
    assert _nparams(b0) / 1e6 == pytest.approx(3.32, rel=0.02)
    assert _nparams(b2) / 1e6 == pytest.approx(24.2, rel=0.02)


def test_mit_feature_info_matches_outputs():
    enc = ENCODERS.get("mit_test")().eval()
    feats = enc(torch.randn(1, 3, 64, 96))
    assert [f["reduction"] for f in enc.feature_info] == [4, 8, 16, 32]
    for f, info in zip(feats, enc.feature_info, strict=True):
        assert f.shape == (1, info["num_chs"], 64 // info["reduction"], 96 // info["reduction"])


def test_mit_official_key_layout():
    keys = set(ENCODERS.get("mit_b0")().state_dict())
    expected = {
        "patch_embed1.proj.weight", "patch_embed4.norm.bias", "block1.0.norm1.weight", "block1.0.attn.q.weight",
        "block1.0.attn.kv.bias", "block1.0.attn.proj.weight", "block1.1.attn.sr.weight", "block3.1.attn.norm.bias",
        "block4.1.norm2.weight", "block2.0.mlp.fc1.weight", "block2.0.mlp.dwconv.dwconv.weight",
        "block4.1.mlp.fc2.bias", "norm1.weight", "norm4.bias",
    }  # fmt: skip
    assert expected <= keys
    assert not any(k.startswith("block4.0.attn.sr") for k in keys)  # sr_ratio 1 in stage 4


# ----------------------------------------------------------------------------- segmentor contract


@pytest.mark.parametrize("missing", ["drop", "zero"])
def test_encode_once_equals_forward_for_every_subset(missing):
    model = _tiny()
    x = _inputs(MODS4, h=32, w=32)
    with torch.no_grad():
        feats = model.encode(x)
        zero_feats = model.encode({n: torch.zeros_like(v) for n, v in x.items()})
        assert [f.shape[:2] for f in feats] == [(2, 4)] * 4
        for k in range(1, 5):
            for subset in itertools.combinations(MODS4, k):
                present = model.present_mask(subset, 2)
                f = feats
                if missing == "zero":
                    keep = present[:, :, None, None, None]
                    f = [torch.where(keep, a, z) for a, z in zip(feats, zero_feats, strict=True)]
                cached = model.fuse_decode(f, present, out_size=(32, 32), fill=missing)
                naive = model({n: x[n] for n in subset} if missing == "drop" else x, present=present, fill=missing)
                torch.testing.assert_close(cached, naive, atol=1e-5, rtol=1e-5)


def test_per_sample_present_masks():
    """drop: each sample equals its own subset run alone; zero: equals zero-filled inputs."""
    model = _tiny()
    x = _inputs(MODS4, b=3, h=32, w=32)
    present = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        drop = model(x, present, fill="drop")
        zero = model(x, present, fill="zero")
        for b in range(3):
            names = [n for n, p in zip(MODS4, present[b], strict=True) if p]
            alone = model({n: x[n][b : b + 1] for n in names}, present=names, fill="drop")
            torch.testing.assert_close(drop[b : b + 1], alone, atol=1e-5, rtol=1e-5)
            filled = {n: x[n][b : b + 1] * float(p) for n, p in zip(MODS4, present[b], strict=True)}
            torch.testing.assert_close(zero[b : b + 1], model(filled, fill="zero"), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(drop, zero)


def test_missing_default_is_overridable():
    x = _inputs(MODS4, h=32, w=32)
    zero_model = _tiny(fill="zero")
    drop_model = _tiny()
    with torch.no_grad():
        torch.testing.assert_close(zero_model(x, ("rgb",)), drop_model(x, ("rgb",), fill="zero"))
        torch.testing.assert_close(zero_model(x, ("rgb",), fill="drop"), drop_model(x, ("rgb",)))


def test_weights_shared_across_modalities():
    one = create_model("segformer_mit_test", modalities=("rgb",))
    four = create_model("segformer_mit_test", modalities=MODS4)
    assert _nparams(one) == _nparams(four)
    assert sum(isinstance(m, type(four.encoder)) for m in four.modules()) == 1
    model = _tiny()
    x = _inputs(MODS4, h=32, w=32)
    with torch.no_grad():
        feats = model.encode(x)
        for i, n in enumerate(MODS4):  # each slot is the one encoder applied to that modality alone
            for f, g in zip(feats, model.encoder(x[n]), strict=True):
                torch.testing.assert_close(f[:, i], g, atol=1e-5, rtol=1e-5)


def test_no_modality_present_raises():
    model = _tiny()
    x = _inputs(MODS4, h=32, w=32)
    present = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    for missing in ("drop", "zero"):
        with pytest.raises(ValueError, match="no modality"):
            model(x, present, fill=missing)
    with pytest.raises(ValueError, match="no modality"):
        model(x, present=())
    with pytest.raises(ValueError, match="unknown modalities"):
        model(x, present=("nir",))
    with pytest.raises(ValueError, match="not given"):
        model({"rgb": x["rgb"]})  # all marked present, three not given


def test_drop_skips_absent_modalities_and_trains():
    """A batch-wide dropout needs only the kept inputs; gradients reach the shared encoder."""
    model = _tiny().train()
    x = _inputs(("rgb", "lidar"), h=32, w=32)
    logits, feats = model.forward_features(x, present=("rgb", "lidar"))
    assert logits.shape == (2, 5, 32, 32) and feats[0].shape[1] == 4
    assert feats[0][:, 1].abs().sum() == 0  # depth never encoded
    logits.mean().backward()
    assert model.encoder.patch_embed1.proj.weight.grad is not None


# ----------------------------------------------------------------------------- checkpoints


def _same_outputs(a: MultiModalSegmentor, b: MultiModalSegmentor) -> None:
    x = _inputs(a.modalities, h=32, w=32, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), atol=0, rtol=0)


def _randomize_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)


def test_official_mmseg_round_trip(tmp_path):
    src = _tiny()
    _randomize_bn(src)
    sd = to_official_state_dict(src)
    assert "backbone.block1.0.attn.q.weight" in sd and "decode_head.linear_fuse.bn.running_var" in sd
    assert "decode_head.linear_c4.proj.weight" in sd and "decode_head.linear_pred.weight" in sd
    sd["decode_head.conv_seg.weight"] = torch.zeros(5, 32, 1, 1)  # present in mmseg files, unused
    torch.save({"meta": {"epoch": 3}, "state_dict": sd}, tmp_path / "segformer.pth")
    dst = create_model("segformer_mit_test", modalities=MODS4, num_classes=5)
    assert load_pretrained(dst, tmp_path / "segformer.pth") == []
    _same_outputs(src, dst)
    # the same file through create_model(pretrained=...)
    _same_outputs(
        src,
        create_model("segformer_mit_test", modalities=MODS4, num_classes=5, pretrained=str(tmp_path / "segformer.pth")),
    )


def test_native_and_ddp_and_safetensors_layouts(tmp_path):
    src = _tiny()
    torch.save({"model": {"module." + k: v for k, v in src.state_dict().items()}}, tmp_path / "ddp.pt")
    dst = create_model("segformer_mit_test", modalities=MODS4, num_classes=5)
    load_pretrained(dst, tmp_path / "ddp.pt")
    _same_outputs(src, dst)
    st = pytest.importorskip("safetensors.torch")
    st.save_file(to_official_state_dict(src), str(tmp_path / "w.safetensors"))
    dst = create_model("segformer_mit_test", modalities=MODS4, num_classes=5)
    load_pretrained(dst, tmp_path / "w.safetensors")
    _same_outputs(src, dst)


def test_imagenet_encoder_checkpoint_needs_allow_missing_head(tmp_path):
    src = _tiny()
    sd = to_official_state_dict(src.encoder)
    assert "block1.0.attn.q.weight" in sd
    sd["head.weight"], sd["head.bias"] = torch.zeros(1000, 32), torch.zeros(1000)  # ImageNet classifier
    torch.save(sd, tmp_path / "mit_test.pth")
    dst = create_model("segformer_mit_test", modalities=MODS4, num_classes=5)
    head_before = {k: v.clone() for k, v in dst.head.state_dict().items()}
    with pytest.raises(ConfigError, match="allow_missing_head"):
        load_pretrained(dst, tmp_path / "mit_test.pth")
    left = load_pretrained(dst, tmp_path / "mit_test.pth", allow_missing_head=True)
    assert left and all(k.startswith("head.") for k in left)
    for k, v in dst.encoder.state_dict().items():
        torch.testing.assert_close(v, src.encoder.state_dict()[k])
    for k, v in dst.head.state_dict().items():
        torch.testing.assert_close(v, head_before[k])
    enc = ENCODERS.get("mit_test")()  # also straight into a bare encoder
    assert load_pretrained(enc, tmp_path / "mit_test.pth") == []


def test_mismatched_checkpoint_names_keys(tmp_path):
    with torch.device("meta"):
        b0 = create_model("segformer_mit_b0", modalities=MODS4, num_classes=5)
    sd = {k: torch.zeros(v.shape) for k, v in to_official_state_dict(b0).items()}
    torch.save(sd, tmp_path / "b0.pth")
    dst = create_model("segformer_mit_test", modalities=MODS4, num_classes=5)
    with pytest.raises(ConfigError) as e:
        load_pretrained(dst, tmp_path / "b0.pth")
    msg = str(e.value)
    assert "shape mismatches" in msg and "encoder.patch_embed1.proj.weight" in msg
    assert "unexpected keys" in msg and "encoder.block1.1" in msg  # B0 has 2 blocks per stage
    timm_sd = create_model("segformer_timm", backbone="resnet18", modalities=MODS4, num_classes=5).state_dict()
    torch.save(timm_sd, tmp_path / "r18.pth")
    with pytest.raises(ConfigError, match="missing keys: encoder.patch_embed1"):
        load_pretrained(dst, tmp_path / "r18.pth")


def test_other_class_count_needs_ignore(tmp_path):
    src = create_model("segformer_mit_test", modalities=MODS4, num_classes=19)
    torch.save(to_official_state_dict(src), tmp_path / "c19.pth")
    dst = create_model("segformer_mit_test", modalities=MODS4, num_classes=5)
    with pytest.raises(ConfigError, match="head.linear_pred.weight"):
        load_pretrained(dst, tmp_path / "c19.pth")
    left = load_pretrained(dst, tmp_path / "c19.pth", ignore=("head.linear_pred.*",))
    assert left == ["head.linear_pred.bias", "head.linear_pred.weight"]


def test_bad_checkpoint_files(tmp_path):
    model = _tiny()
    with pytest.raises(ConfigError, match="not found"):
        load_pretrained(model, tmp_path / "nope.pth")
    with pytest.raises(ConfigError, match="local"):
        load_pretrained(model, "https://example.com/mit_b0.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="weights-only"):
        load_pretrained(model, tmp_path / "junk.pth")


# ----------------------------------------------------------------------------- timm backbones


def test_timm_backbone_segmentor():
    model = create_model("segformer_timm", backbone="resnet18", modalities=("rgb", "depth"), num_classes=4).eval()
    assert isinstance(model.encoder, TimmEncoder)
    assert [f["reduction"] for f in model.encoder.feature_info] == [4, 8, 16, 32]
    assert [f["num_chs"] for f in model.encoder.feature_info] == [64, 128, 256, 512]
    x = _inputs(("rgb", "depth"), h=64, w=64)
    with torch.no_grad():
        assert model(x).shape == (2, 4, 64, 64)
        assert model(x, present=("depth",)).shape == (2, 4, 64, 64)


def test_timm_pretrained_is_local_only(tmp_path):
    with pytest.raises(ConfigError, match="pretrained=<path"):
        TimmEncoder("resnet18", pretrained=True)
    with pytest.raises(ConfigError, match="resnet18"):
        TimmEncoder("resnet_18")
    full = timm.create_model("resnet18")  # with its classifier, as timm writes it
    torch.save(full.state_dict(), tmp_path / "r18.pth")
    enc = TimmEncoder("resnet18", pretrained=tmp_path / "r18.pth")
    torch.testing.assert_close(enc.model.layer1[0].conv1.weight, full.layer1[0].conv1.weight)
    torch.save(timm.create_model("resnet34").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ConfigError, match="unexpected keys: model.layer1.2"):
        TimmEncoder("resnet18", pretrained=tmp_path / "r34.pth")
