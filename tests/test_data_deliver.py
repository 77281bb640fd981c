"""DELIVER loader: layout parsing, published conversions, label decoding, filters and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rsbench.data import create_dataset
from rsbench.data.base import IMAGENET_MEAN, IMAGENET_STD
from rsbench.data.deliver import CLASSES, DeliverDataset, scene_case
from rsbench.errors import DataError
from tests.fixtures_deliver import deliver_path, write_deliver_sample

MODS = ("rgb", "depth", "event", "lidar")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Six train frames over conditions and cases, one val frame."""
    r = tmp_path / "DELIVER"
    write_deliver_sample(r, "cloud", "train", "MAP_1_point12", "000100", seed=1)
    write_deliver_sample(r, "cloud", "train", "MAP_1_point12_motionblur", "000100", seed=2)
    write_deliver_sample(r, "night", "train", "MAP_4_point12", "000200", seed=3)
    write_deliver_sample(r, "night", "train", "MAP_4_point12_motionblur", "000300", seed=4)
    write_deliver_sample(r, "rain", "train", "MAP_10_point102_eventlowres", "000400", event_size=16, seed=5)
    write_deliver_sample(r, "sun", "train", "MAP_2_point5_lidarjitter", "000500", seed=6)
    write_deliver_sample(r, "fog", "val", "MAP_3_point7", "000600", seed=7)
    return r


def _raw(values: list[int], size: int = 32) -> np.ndarray:
    raw = np.zeros((size, size), np.uint8)
    raw.flat[: len(values)] = values
    return raw


def test_info() -> None:
    info = DeliverDataset.info
    assert info.num_classes == 25 and len(info.palette) == 25
    assert info.classes[0] == "Building" and info.classes[-1] == "Truck"
    assert info.palette[0] == (70, 70, 70) and info.palette[CLASSES.index("Road")] == (128, 64, 128)
    assert scene_case("MAP_1_point12") == "normal" and scene_case("MAP_1_point12_eventlowres") == "eventlowres"


def test_sample_contract(root: Path) -> None:
    ds = DeliverDataset(root, split="train")
    assert len(ds) == 6
    s = ds[0]
    assert set(s) == {"modalities", "label", "meta"}
    assert tuple(s["modalities"]) == MODS
    for t in s["modalities"].values():
        assert t.shape == (3, 32, 32) and t.dtype == torch.float32
    assert s["label"].shape == (32, 32) and s["label"].dtype == torch.int64
    lab = s["label"]
    assert bool(((lab >= 0) & (lab < 25) | (lab == 255)).all())
    assert s["meta"] == {
        "id": "img/cloud/train/MAP_1_point12/000100_rgb_front.png",
        "dataset": "deliver",
        "split": "train",
        "condition": "cloud",
        "case": "normal",
        "scene": "MAP_1_point12",
    }
    assert [r.id for r in ds.samples] == sorted(r.id for r in ds.samples)
    assert ds.check() == []


def test_published_conversions(tmp_path: Path) -> None:
    arrays = write_deliver_sample(tmp_path, seed=11)
    s = DeliverDataset(tmp_path)[0]
    rgb = (arrays["rgb"].astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(s["modalities"]["rgb"].numpy(), rgb.transpose(2, 0, 1), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        s["modalities"]["depth"].numpy(), arrays["depth"].transpose(2, 0, 1) / np.float32(255)
    )
    np.testing.assert_array_equal(
        s["modalities"]["event"].numpy(), arrays["event"].transpose(2, 0, 1) / np.float32(255)
    )
    lidar = s["modalities"]["lidar"].numpy()
    np.testing.assert_array_equal(lidar, np.repeat(arrays["lidar"][None] / np.float32(255), 3, axis=0))
    for name in ("depth", "event", "lidar"):
        t = s["modalities"][name]
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def test_label_from_red_channel(tmp_path: Path) -> None:
    write_deliver_sample(tmp_path, raw_label=_raw([0, 1, 25, 7]))
    lab = DeliverDataset(tmp_path)[0]["label"].numpy()
    assert lab.flat[:4].tolist() == [255, 0, 24, 6]
    assert set(np.unique(lab).tolist()) <= {0, 24, 6, 255}


def test_raw_255_is_an_error_by_default(tmp_path: Path) -> None:
    write_deliver_sample(tmp_path, raw_label=_raw([0, 1, 255]))
    ds = DeliverDataset(tmp_path)
    with pytest.raises(DataError, match="ignore_raw_255") as exc:
        ds[0]
    assert "000100" not in str(exc.value) and "045050_semantic_front.png" in str(exc.value)
    assert "\n" not in str(exc.value)
    [problem] = ds.check()
    assert problem.kind == "invalid" and "raw label id 255" in problem.detail


def test_raw_255_ignored_with_published_option(tmp_path: Path) -> None:
    write_deliver_sample(tmp_path, raw_label=_raw([0, 1, 255, 25]))
    lab = DeliverDataset(tmp_path, ignore_raw_255=True)[0]["label"].numpy()
    assert lab.flat[:4].tolist() == [255, 0, 255, 24]


@pytest.mark.parametrize("ignore_raw_255", [False, True])
def test_label_id_out_of_range(tmp_path: Path, ignore_raw_255: bool) -> None:
    write_deliver_sample(tmp_path, raw_label=_raw([3, 26]))
    ds = DeliverDataset(tmp_path, ignore_raw_255=ignore_raw_255)
    with pytest.raises(DataError, match="raw label id 26 out of range"):
        ds[0]
    assert [p.kind for p in ds.check()] == ["invalid"]


def test_one_channel_inputs(tmp_path: Path) -> None:
    arrays = write_deliver_sample(tmp_path, rgb_channels=1, depth_channels=1, label_channels=1, raw_label=_raw([0, 5]))
    s = DeliverDataset(tmp_path)[0]
    gray = arrays["rgb"].astype(np.float32)[None] / 255
    rgb = (gray - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    np.testing.assert_allclose(s["modalities"]["rgb"].numpy(), rgb, rtol=1e-6, atol=1e-6)
    depth = s["modalities"]["depth"].numpy()
    np.testing.assert_array_equal(depth, np.repeat(arrays["depth"][None] / np.float32(255), 3, axis=0))
    assert s["label"].numpy().flat[:2].tolist() == [255, 4]


def test_alpha_channel_dropped(tmp_path: Path) -> None:
    arrays = write_deliver_sample(tmp_path, alpha=("rgb", "depth", "event", "label"), raw_label=_raw([1, 2, 0]))
    plain = tmp_path / "plain"
    write_deliver_sample(plain, raw_label=_raw([1, 2, 0]))
    a, b = DeliverDataset(tmp_path)[0], DeliverDataset(plain)[0]
    for name in MODS:
        assert torch.equal(a["modalities"][name], b["modalities"][name]), name
    assert torch.equal(a["label"], b["label"])
    assert a["label"].numpy().flat[:3].tolist() == [0, 1, 255]
    assert arrays["rgb"].shape == (32, 32, 3)


def test_eventlowres_events_are_nearest_resized(root: Path) -> None:
    ds = DeliverDataset(root, conditions=("eventlowres",))
    assert len(ds) == 1
    small = write_deliver_sample(root, "rain", "train", "MAP_10_point102_eventlowres", "000400", event_size=16, seed=5)
    event = ds[0]["modalities"]["event"].numpy()
    expect = np.repeat(np.repeat(small["event"], 2, axis=0), 2, axis=1).transpose(2, 0, 1) / np.float32(255)
    np.testing.assert_array_equal(event, expect)
    assert ds.check() == []


def test_eventlowres_resize_matches_published_nearest(tmp_path: Path) -> None:
    """torchvision/torch 'nearest' (published) takes source pixel floor(i * in / out); so must we."""
    small = write_deliver_sample(tmp_path, scene="MAP_1_point1_eventlowres", size=42, event_size=17)["event"]
    event = DeliverDataset(tmp_path, modalities=("event",))[0]["modalities"]["event"].numpy()
    src = np.floor(np.arange(42) * (17 / 42)).astype(int)
    expect = small[src][:, src].transpose(2, 0, 1) / np.float32(255)
    np.testing.assert_array_equal(event, expect)


def test_small_event_outside_eventlowres_is_an_error(tmp_path: Path) -> None:
    write_deliver_sample(tmp_path, event_size=16)
    ds = DeliverDataset(tmp_path)
    with pytest.raises(DataError, match=r"045050_event_front\.png: size 16x16 differs from the RGB 32x32"):
        ds[0]
    [problem] = ds.check()
    assert problem.kind == "invalid" and "event_front.png" in problem.detail


def test_modality_of_wrong_size(tmp_path: Path) -> None:
    write_deliver_sample(tmp_path, lidar_size=24)
    ds = DeliverDataset(tmp_path)
    with pytest.raises(DataError, match=r"_lidar_front\.png: size 24x24"):
        ds[0]
    assert DeliverDataset(tmp_path, modalities=("rgb", "depth"))[0]["label"].shape == (32, 32)


def test_root_containing_rain_and_img(tmp_path: Path) -> None:
    r = tmp_path / "img" / "rain_sun_fog" / "DELIVER"
    write_deliver_sample(r, "cloud", "train", "MAP_1_point12", "000100", seed=1)
    write_deliver_sample(r, "rain", "train", "MAP_1_point13", "000200", seed=2)
    ds = DeliverDataset(r)
    assert [ref.meta["condition"] for ref in ds.samples] == ["cloud", "rain"]
    assert ds.samples[0].files["depth"] == deliver_path(r, "depth", "cloud", "train", "MAP_1_point12", "000100")
    assert ds.check() == []
    assert [ref.id for ref in DeliverDataset(r, conditions=("rain",)).samples] == [
        "img/rain/train/MAP_1_point13/000200_rgb_front.png"
    ]
    assert len(DeliverDataset(r, conditions=("normal",))) == 2


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (("night",), [("night", "normal"), ("night", "motionblur")]),
        (("motionblur",), [("cloud", "motionblur"), ("night", "motionblur")]),
        (("night", "motionblur"), [("night", "motionblur")]),
        (
            ("cloud", "night"),
            [("cloud", "normal"), ("cloud", "motionblur"), ("night", "normal"), ("night", "motionblur")],
        ),
        (("normal",), [("cloud", "normal"), ("night", "normal")]),
        (("eventlowres", "lidarjitter"), [("rain", "eventlowres"), ("sun", "lidarjitter")]),
    ],
)
def test_condition_and_case_filters(root: Path, conditions: tuple[str, ...], expected: list) -> None:
    ds = DeliverDataset(root, conditions=conditions)
    assert sorted((r.meta["condition"], r.meta["case"]) for r in ds.samples) == sorted(expected)


def test_counts(root: Path) -> None:
    assert DeliverDataset(root).counts() == {
        "cloud/motionblur": 1,
        "cloud/normal": 1,
        "night/motionblur": 1,
        "night/normal": 1,
        "rain/eventlowres": 1,
        "sun/lidarjitter": 1,
    }


def test_same_frame_in_two_scenes(root: Path) -> None:
    ds = DeliverDataset(root, conditions=("cloud",))
    ids = [r.id for r in ds.samples]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(i.endswith("000100_rgb_front.png") for i in ids)
    assert not torch.equal(ds[0]["modalities"]["rgb"], ds[1]["modalities"]["rgb"])


def test_only_rgb_front_files_are_indexed(root: Path) -> None:
    scene = root / "img" / "cloud" / "train" / "MAP_1_point12"
    (scene / "notes.txt").write_text("x")
    (scene / "000100_rgb_front.png.bak").write_bytes(b"")
    (root / "img" / "README.md").write_text("x")
    assert len(DeliverDataset(root)) == 6


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        DeliverDataset(tmp_path / "nope")
    msg = str(exc.value)
    assert "deliver-synth" in msg and "{img,hha,event,lidar,semantic}" in msg and "\n" not in msg
    with pytest.raises(DataError, match="deliver-synth"):
        DeliverDataset(tmp_path)  # exists, but no img/ inside
    write_deliver_sample(tmp_path / "DELIVER")
    with pytest.raises(DataError, match="did you mean"):
        DeliverDataset(tmp_path)


def test_missing_root_via_create_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="deliver-synth"):
        create_dataset("deliver")
    write_deliver_sample(tmp_path, raw_label=_raw([255]))
    ds = create_dataset("deliver", root=tmp_path, split="train", ignore_raw_255=True, modalities=("rgb",))
    assert isinstance(ds, DeliverDataset) and ds.name == "deliver" and int(ds[0]["label"][0, 0]) == 255


def test_empty_split(root: Path) -> None:
    with pytest.raises(DataError, match="split 'test'.*is empty"):
        DeliverDataset(root, split="test")
    with pytest.raises(DataError, match="empty"):
        DeliverDataset(root, split="val", conditions=("night",))
    assert len(DeliverDataset(root, split="val")) == 1


def test_truncated_png(tmp_path: Path) -> None:
    write_deliver_sample(tmp_path)
    path = deliver_path(tmp_path, "depth", "cloud", "train", "MAP_1_point12", "045050")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    ds = DeliverDataset(tmp_path)
    with pytest.raises(DataError, match="depth_front.png"):
        ds[0]
    [problem] = ds.check()
    assert problem.kind == "invalid" and "truncated" in problem.detail


def test_check_reports_missing_partner(root: Path) -> None:
    lidar = deliver_path(root, "lidar", "night", "train", "MAP_4_point12", "000200")
    label = deliver_path(root, "label", "night", "train", "MAP_4_point12", "000200")
    lidar.unlink()
    label.unlink()
    problems = DeliverDataset(root).check()
    assert {(p.kind, p.detail) for p in problems} == {("missing", str(lidar)), ("missing", str(label))}
    assert {p.sample for p in problems} == {"img/night/train/MAP_4_point12/000200_rgb_front.png"}
    # the raw depth/ folder is not read: depth comes from hha/
    assert [p.detail for p in DeliverDataset(root, modalities=("rgb", "depth")).check()] == [str(label)]


def test_depth_is_read_from_hha_not_depth(root: Path) -> None:
    ref = DeliverDataset(root).samples[0]
    assert ref.files["depth"].relative_to(root).parts[0] == "hha"
    assert ref.files["depth"].name.endswith("_depth_front.png")
