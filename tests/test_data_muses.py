"""MUSES loader: both layouts, exact 16-bit decoding, options and every user-caused error, on hand-made files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rsbench.data import create_dataset
from rsbench.data.muses import NORM_STATS, MusesDataset, decode_projected, minmax_robustseg
from rsbench.errors import ConfigError, DataError
from rsbench.io import write_png

H, W = 36, 64
CELLS = (("clear", "day"), ("fog", "night"), ("fog", "day"), ("rain", "night"), ("snow", "day"))
SPLITS = ("train", "val", "test")


def encode(v: float) -> int:
    """The SDK's PNG encoding of one decoded value."""
    return round((v + 100) * 150)


def make_arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    hit = rng.random((H, W)) < 0.3
    lidar = np.full((H, W, 3), 15000, np.uint16)
    lidar[hit] = rng.integers(14000, 40000, (int(hit.sum()), 3), dtype=np.uint16)
    lidar[0, 0] = [encode(12.5), encode(3.0), encode(-1.5)]
    radar = np.full((H, W, 3), 15000, np.uint16)
    radar[~hit & (rng.random((H, W)) < 0.1), :2] = 20000
    radar[1, 1] = [encode(40.0), encode(7.5), 15000]
    event = np.zeros((H, W, 3), np.uint8)
    event[:, :, :2] = rng.integers(0, 4, (H, W, 2), dtype=np.uint8)
    label = rng.integers(0, 19, (H, W), dtype=np.uint8)
    label[:4, :4] = 255
    return {
        "frame": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "lidar": lidar,
        "radar": radar,
        "event": event,
        "label": label,
    }


def make_muses(
    root: Path, layout: str = "release", *, test_labels: bool = False, radar: bool = True, meta: bool = False
) -> Path:
    """Write one sample per (split, cell) in the real names and formats; same pixels for both layouts."""
    sensors = root / "projected_to_rgb" if layout == "release" else root
    entries = {}
    for s, split in enumerate(SPLITS):
        for c, (weather, tod) in enumerate(CELLS):
            stem = f"REC{s + 1:04d}_frame_{c * 10:06d}"
            a = make_arrays(100 * s + c)
            cell = Path(split, weather, tod)
            write_png(root / "frame_camera" / cell / f"{stem}_frame_camera.png", a["frame"])
            if split != "test" or test_labels:
                write_png(root / "gt_semantic" / cell / f"{stem}_gt_labelTrainIds.png", a["label"])
            write_png(sensors / "lidar" / cell / f"{stem}_lidar.png", a["lidar"])
            write_png(sensors / "event_camera" / cell / f"{stem}_event_camera.png", a["event"])
            if radar:
                write_png(sensors / "radar" / cell / f"{stem}_radar.png", a["radar"])
            entries[stem] = {"split": split, "weather": weather, "time_of_day": tod, "sun_level": "x"}
    if meta:
        (root / "meta.json").write_text(json.dumps(entries))
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    # The root's own name holds condition words and "frame_camera": only parts below it may count.
    return make_muses(tmp_path / "frame_camera-rain-night-day" / "muses")


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    return make_muses(tmp_path / "snow_fog" / "multimodal", layout="flat")


def frame_file(root: Path, split: str = "val", cell: tuple[str, str] = ("fog", "night"), c: int = 1) -> Path:
    s = SPLITS.index(split)
    return root / "frame_camera" / split / cell[0] / cell[1] / f"REC{s + 1:04d}_frame_{c * 10:06d}_frame_camera.png"


def partner(frame: Path, root: Path, folder: str, layout: str = "release") -> Path:
    rel = frame.relative_to(root / "frame_camera")
    name = rel.name.replace("frame_camera", folder if folder != "gt_semantic" else "gt_labelTrainIds")
    base = root / "projected_to_rgb" if layout == "release" and folder != "gt_semantic" else root
    return base / folder / rel.parent / name


# ------------------------------------------------------------------ pure functions
def test_decode_projected_exact() -> None:
    png = np.full((2, 3, 3), 15000, np.uint16)
    png[0, 0] = [encode(12.5), encode(3.0), encode(-1.5)]
    out = decode_projected(png)
    assert out.dtype == np.float32 and out.shape == (2, 3, 3)
    assert out[0, 0].tolist() == [12.5, 3.0, -1.5]
    assert (out[1:] == 0).all() and (out[0, 1:] == 0).all()  # empty (15000) -> exactly 0
    with pytest.raises(DataError):
        decode_projected(png.astype(np.uint8))
    with pytest.raises(DataError):
        decode_projected(png[:, :, 0])


def test_minmax_robustseg() -> None:
    png = np.full((2, 2, 3), 15000, np.uint16)  # >> 8 = 58
    png[0, 0, 0] = 25600  # >> 8 = 100
    out = minmax_robustseg(png)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    assert out[0, 0, 0] == 255.0 and out.min() == 0.0 and np.count_nonzero(out) == 1
    assert (minmax_robustseg(np.full((2, 2, 3), 15000, np.uint16)) == 0).all()


def test_minmax_matches_pillow_reading(tmp_path: Path) -> None:
    """RobustSeg's path without its resize: Pillow convert('RGB') of the 16-bit PNG, then global min-max."""
    image = pytest.importorskip("PIL.Image")
    png = make_arrays(7)["lidar"]
    write_png(tmp_path / "l.png", png)
    x = np.asarray(image.open(tmp_path / "l.png").convert("RGB")).astype(np.float32).transpose(2, 0, 1)
    ref = (x - x.min()) / (x.max() - x.min()) * 255.0
    assert np.array_equal(minmax_robustseg(png), ref)


# ------------------------------------------------------------------ contract
def test_sample_contract(release: Path) -> None:
    ds = MusesDataset(release, split="val")
    assert ds.layout == "release" and len(ds) == len(CELLS)
    assert ds.modalities == ("frame", "event", "lidar")
    sample = ds[0]
    assert set(sample["modalities"]) == {"frame", "event", "lidar"}
    for x in sample["modalities"].values():
        assert x.dtype == torch.float32 and x.shape == (3, H, W)
    label = sample["label"]
    assert label.dtype == torch.int64 and label.shape == (H, W)
    assert ((label < 19) | (label == 255)).all() and (label == 255).any()
    assert sample["meta"]["id"] == "frame_camera/val/clear/day/REC0002_frame_000000_frame_camera.png"
    assert sample["meta"]["weather"] == "clear" and sample["meta"]["time_of_day"] == "day"
    assert sample["meta"]["dataset"] == "muses" and sample["meta"]["split"] == "val"
    ids = [r.id for r in ds.samples]
    assert ids == sorted(ids)


def test_conversions(release: Path) -> None:
    ds = MusesDataset(release, split="val", modalities=["frame", "event", "lidar", "radar"])
    i = [r.id for r in ds.samples].index(frame_file(release).relative_to(release).as_posix())
    a = make_arrays(100 * 1 + 1)
    m = ds[i]["modalities"]
    lidar_mean, lidar_std = NORM_STATS["lidar"]
    expected = (np.array([12.5, 3.0, -1.5], np.float32) - lidar_mean) / lidar_std
    assert np.allclose(m["lidar"][:, 0, 0].numpy(), expected, atol=1e-6)
    empty = np.argwhere((a["lidar"] == 15000).all(axis=2))[0]
    assert np.allclose(m["lidar"][:, empty[0], empty[1]].numpy(), -lidar_mean / lidar_std, atol=1e-6)
    assert np.allclose(m["radar"][:, 1, 1].numpy(), [40.0 / 13.3, 7.5 / 17.6, 0.0], atol=1e-6)
    ev_mean, ev_std = NORM_STATS["event"]
    assert np.allclose(m["event"].numpy(), ((a["event"] - ev_mean) / ev_std).transpose(2, 0, 1), atol=1e-5)
    frame = (a["frame"] / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert np.allclose(m["frame"].numpy(), frame.transpose(2, 0, 1), atol=1e-5)
    assert torch.equal(ds[i]["label"], torch.from_numpy(a["label"].astype(np.int64)))


def test_both_layouts_identical(release: Path, flat: Path) -> None:
    mods = ["frame", "event", "lidar", "radar"]
    a = MusesDataset(release, split="train", modalities=mods)
    b = MusesDataset(flat, split="train", modalities=mods)
    assert (a.layout, b.layout) == ("release", "flat")
    assert [r.id for r in a.samples] == [r.id for r in b.samples]
    for i in range(len(a)):
        sa, sb = a[i], b[i]
        assert sa["meta"] == sb["meta"]
        assert torch.equal(sa["label"], sb["label"])
        for name in mods:
            assert torch.equal(sa["modalities"][name], sb["modalities"][name])


def test_explicit_layout(release: Path, flat: Path) -> None:
    with pytest.raises(DataError, match="projected_to_rgb"):
        MusesDataset(flat, split="val", layout="release")
    with pytest.raises(ConfigError, match="layout"):
        MusesDataset(release, layout="robustseg")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lidar_norm"):
        MusesDataset(release, lidar_norm="zscore")  # type: ignore[arg-type]


def test_radar_is_optional(tmp_path: Path) -> None:
    root = make_muses(tmp_path / "muses", radar=False)
    ds = MusesDataset(root, split="val")  # default modalities never touch radar
    assert "radar" not in ds[0]["modalities"] and not ds.check()
    with_radar = MusesDataset(root, split="val", modalities=["frame", "radar"])
    problems = with_radar.check()
    assert len(problems) == len(CELLS) and all(p.kind == "missing" and "_radar.png" in p.detail for p in problems)
    with pytest.raises(DataError, match="_radar.png"):
        with_radar[0]


def test_condition_filters(release: Path) -> None:
    assert len(MusesDataset(release, split="val", conditions=["fog"])) == 2
    fog_night = MusesDataset(release, split="val", conditions=["fog", "night"])  # AND across fields
    assert [r.meta for r in fog_night.samples] == [{"weather": "fog", "time_of_day": "night"}]
    assert len(MusesDataset(release, split="val", conditions=["fog", "rain"])) == 3  # OR within a field
    assert len(MusesDataset(release, split="val", conditions=["night"])) == 2
    with pytest.raises(DataError, match="empty"):
        MusesDataset(release, split="val", conditions=["snow", "night"])
    with pytest.raises(ConfigError):
        MusesDataset(release, split="val", conditions=["sun"])
    assert MusesDataset(release, split="val").counts() == {f"{w}/{t}": 1 for w, t in sorted(CELLS)}


def test_ignore_to_road(release: Path) -> None:
    plain = MusesDataset(release, split="val")[0]["label"]
    quirk = MusesDataset(release, split="val", ignore_to_road=True)[0]["label"]
    assert (plain[:4, :4] == 255).all() and (quirk[:4, :4] == 0).all()
    assert not (quirk == 255).any()
    assert torch.equal(plain[plain != 255], quirk[plain != 255])


def test_lidar_minmax_option(release: Path) -> None:
    ds = MusesDataset(release, split="val", modalities=["lidar", "radar"], lidar_norm="minmax")
    m = ds[0]["modalities"]
    for name in ("lidar", "radar"):
        assert float(m[name].min()) == 0.0 and float(m[name].max()) == 255.0
    assert torch.equal(m["lidar"], torch.from_numpy(minmax_robustseg(make_arrays(100)["lidar"])))


def test_create_dataset(release: Path) -> None:
    ds = create_dataset("muses", root=release, split="train", conditions=["snow"], ignore_to_road=True)
    assert isinstance(ds, MusesDataset) and len(ds) == 1 and ds.ignore_to_road


# ------------------------------------------------------------------ test split
def test_test_split_labels_withheld(release: Path) -> None:
    with pytest.raises(DataError, match="Codabench"):
        MusesDataset(release, split="test")


def test_test_split_with_labels(tmp_path: Path) -> None:
    ds = MusesDataset(make_muses(tmp_path / "m", test_labels=True), split="test")
    assert len(ds) == len(CELLS) and ds[0]["label"].shape == (H, W)


# ------------------------------------------------------------------ meta.json
def test_meta_json_cross_check(tmp_path: Path) -> None:
    root = make_muses(tmp_path / "m", meta=True)
    assert len(MusesDataset(root, split="val")) == len(CELLS)  # agrees: fine
    meta = json.loads((root / "meta.json").read_text())
    meta["REC0002_frame_000010"]["time_of_day"] = "day"  # that sample lies in fog/night
    meta.pop("REC0002_frame_000020")  # absent entries are not required
    (root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="meta.json") as err:
        MusesDataset(root, split="val")
    assert "REC0002_frame_000010" in str(err.value) and "\n" not in str(err.value)
    (root / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match="meta.json"):
        MusesDataset(root, split="val")


# ------------------------------------------------------------------ user errors
def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        MusesDataset(tmp_path / "nowhere")
    msg = str(err.value)
    assert "projected_to_rgb" in msg and "muses-synth" in msg and "\n" not in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="muses-synth"):
        MusesDataset(tmp_path / "empty")


def test_empty_split(tmp_path: Path) -> None:
    root = make_muses(tmp_path / "m")
    for f in (root / "frame_camera" / "train").rglob("*.png"):
        f.unlink()
    with pytest.raises(DataError, match="'train'.*empty"):
        MusesDataset(root, split="train")


def test_unexpected_condition_folder(release: Path) -> None:
    src = frame_file(release)
    dst = release / "frame_camera" / "val" / "hail" / "day" / src.name
    dst.parent.mkdir(parents=True)
    src.rename(dst)
    with pytest.raises(DataError, match="hail"):
        MusesDataset(release, split="val")


def test_truncated_png(release: Path) -> None:
    lidar = partner(frame_file(release), release, "lidar")
    lidar.write_bytes(lidar.read_bytes()[:60])
    ds = MusesDataset(release, split="val", conditions=["fog", "night"])
    with pytest.raises(DataError, match="_lidar.png"):
        ds[0]
    [problem] = ds.check()
    assert problem.kind == "invalid" and str(lidar) in problem.detail


def test_label_out_of_range(release: Path) -> None:
    label = np.zeros((H, W), np.uint8)
    label[5, 5] = 19
    write_png(partner(frame_file(release), release, "gt_semantic"), label)
    with pytest.raises(DataError, match="label id 19"):
        MusesDataset(release, split="val", conditions=["fog", "night"])[0]


def test_wrong_size_modality(release: Path) -> None:
    event = np.zeros((H // 2, W // 2, 3), np.uint8)
    write_png(partner(frame_file(release), release, "event_camera"), event)
    with pytest.raises(DataError, match=r"event has shape \(3, 18, 32\)"):
        MusesDataset(release, split="val", conditions=["fog", "night"])[0]


@pytest.mark.parametrize(
    ("img", "what"),
    [
        (np.full((H, W, 3), 58, np.uint8), "8-bit 3-channel"),
        (np.full((H, W), 15000, np.uint16), "16-bit 1-channel"),
        (np.full((H, W), 58, np.uint8), "8-bit 1-channel"),
    ],
)
def test_lidar_must_be_16bit_3ch(release: Path, img: np.ndarray, what: str) -> None:
    lidar = partner(frame_file(release), release, "lidar")
    write_png(lidar, img)
    with pytest.raises(DataError, match=what) as err:
        MusesDataset(release, split="val", conditions=["fog", "night"])[0]
    assert str(lidar) in str(err.value)


def test_event_must_be_8bit(release: Path) -> None:
    write_png(partner(frame_file(release), release, "event_camera"), np.zeros((H, W, 3), np.uint16))
    with pytest.raises(DataError, match="8-bit 3-channel event"):
        MusesDataset(release, split="val", conditions=["fog", "night"])[0]


def test_check_reports_missing_partner(flat: Path) -> None:
    event = partner(frame_file(flat), flat, "event_camera", layout="flat")
    event.unlink()
    ds = MusesDataset(flat, split="val")
    problems = ds.check()
    assert len(problems) == 1
    assert problems[0].kind == "missing" and problems[0].detail == str(event)
    assert problems[0].sample == frame_file(flat).relative_to(flat).as_posix()


def test_raw_release_without_projection(tmp_path: Path) -> None:
    root = make_muses(tmp_path / "m", layout="flat")
    for png in (root / "lidar").rglob("*_lidar.png"):
        png.with_suffix(".bin").write_bytes(b"\0" * 48)
        png.unlink()
    with pytest.raises(DataError, match="project_sensors_to_rgb"):
        MusesDataset(root, split="val")


def test_npz_projection_hint(tmp_path: Path) -> None:
    root = make_muses(tmp_path / "m")
    for png in (root / "projected_to_rgb" / "lidar").rglob("*.png"):
        png.with_suffix(".npz").write_bytes(b"")
        png.unlink()
    with pytest.raises(DataError, match="output_file_type .png"):
        MusesDataset(root, split="val")
