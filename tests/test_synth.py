"""The generator writes the three benchmarks' exact layouts, reproducibly, with complementary modalities."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

import rsbench.data.synth as synth
from rsbench.data.synth import deliver, mcubes, muses, scene, synth_defaults, synthesize, visibility_table
from rsbench.errors import ConfigError
from rsbench.io import read_npy, read_png

S = 32


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for base in synth.WRITERS:
        out[base] = tmp_path_factory.mktemp(base)
        synthesize(base, out[base], size=S, n_train=20, n_val=5, n_test=5, seed=3)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ layouts
def test_deliver_tree(trees: dict[str, Path]) -> None:
    root = trees["deliver"]
    rgbs = sorted(root.glob("img/*/*/*/*_rgb_front.png"))
    assert len(rgbs) == 30
    assert {p.parts[-4] for p in rgbs} == set(deliver.CONDITIONS)
    assert {p.parts[-3] for p in rgbs} == {"train", "val", "test"}
    cases = {p.parent.name.rsplit("_", 1)[-1] for p in rgbs if not p.parent.name.split("_")[-1].startswith("point")}
    assert cases == set(deliver.CASES)
    unlabelled = 0
    for rgb_path in rgbs:
        rel = rgb_path.relative_to(root / "img")
        stem = rel.name[: -len("_rgb_front.png")]

        def partner(folder: str, kind: str, rel: Path = rel, stem: str = stem) -> np.ndarray:
            return read_png(root / folder / rel.parent / f"{stem}_{kind}_front.png")

        rgb, hha, depth = read_png(rgb_path), partner("hha", "depth"), partner("depth", "depth")
        event, lidar, sem = partner("event", "event"), partner("lidar", "lidar"), partner("semantic", "semantic")
        assert rgb.dtype == hha.dtype == depth.dtype == event.dtype == lidar.dtype == sem.dtype == np.uint8
        assert rgb.shape == hha.shape == sem.shape == (S, S, 3)
        assert depth.shape == lidar.shape == (S, S)
        half = rel.parent.name.endswith("_eventlowres")
        assert event.shape == ((S // 2, S // 2, 3) if half else (S, S, 3))
        assert not event[..., 1].any() and event[..., [0, 2]].any()
        assert 0 < (lidar > 0).mean() < 0.5  # sparse
        assert not sem[..., 1:].any() and sem[..., 0].max() <= 25
        unlabelled += int((sem[..., 0] == 0).sum())
    assert unlabelled > 0


def test_muses_tree(trees: dict[str, Path]) -> None:
    root = trees["muses"]
    w = round(S * 16 / 9)
    frames = sorted(root.glob("frame_camera/*/*/*/*_frame_camera.png"))
    assert len(frames) == 30
    meta = json.loads((root / "meta.json").read_text())
    assert len(meta) == 30
    assert {(p.parts[-3], p.parts[-2]) for p in frames if p.parts[-4] == "train"} == {
        (wt, t) for wt in muses.WEATHERS for t in muses.TIMES
    }
    for f in frames:
        split, weather, tod = f.parts[-4:-1]
        stem = f.name[: -len("_frame_camera.png")]
        assert meta[stem]["split"] == split and meta[stem]["weather"] == weather and meta[stem]["time_of_day"] == tod
        p = Path(split, weather, tod)
        rgb = read_png(f)
        label = read_png(root / "gt_semantic" / p / f"{stem}_gt_labelTrainIds.png")  # test is labelled too
        lidar = read_png(root / "projected_to_rgb/lidar" / p / f"{stem}_lidar.png")
        radar = read_png(root / "projected_to_rgb/radar" / p / f"{stem}_radar.png")
        event = read_png(root / "projected_to_rgb/event_camera" / p / f"{stem}_event_camera.png")
        assert rgb.dtype == event.dtype == label.dtype == np.uint8 and lidar.dtype == radar.dtype == np.uint16
        assert rgb.shape == event.shape == lidar.shape == radar.shape == (S, w, 3) and label.shape == (S, w)
        assert set(np.unique(label)) <= {0, 1, 2, 5, 8, 9, 10, 11, 13, 14, 255}
        assert not event[..., 2].any()
        empty = (lidar == 15000).all(axis=-1)
        assert 0.5 < empty.mean() < 1.0  # sparse, background exactly 15000
        v = lidar.astype(np.float64) / 150.0 - 100.0
        assert np.all(v[~empty][:, 0] > 0.5) and np.all(v[~empty][:, 0] < 150)  # range in metres
        assert np.all(np.abs(v[~empty][:, 2]) < 40)  # height z in metres
        assert (radar[..., 2] == 15000).all() and (radar != 15000).any()


def test_mcubes_tree(trees: dict[str, Path]) -> None:
    root = trees["mcubes"]
    lists = {s: (root / "list_folder" / f"{s}.txt").read_text().split() for s in ("all", "train", "val", "test")}
    assert [len(lists[s]) for s in ("train", "val", "test")] == [20, 5, 5]
    assert sorted(lists["all"]) == sorted(lists["train"] + lists["val"] + lists["test"]) == lists["all"]
    shape = (S, mcubes.LEFT_OFFSET + S)
    for name in lists["all"]:
        assert name.startswith("outscene") and len(name.rsplit("_", 1)[1]) == 10
        rgb = read_png(root / "polL_color" / f"{name}.png")
        sin, cos = (read_npy(root / d / f"{name}.npy") for d in ("polL_aolp_sin", "polL_aolp_cos"))
        dolp = read_npy(root / "polL_dolp" / f"{name}.npy")
        nir, mask = read_png(root / "NIR_warped" / f"{name}.png"), read_png(root / "NIR_warped_mask" / f"{name}.png")
        gt, ss, ss4 = (read_png(root / d / f"{name}.png") for d in ("GT", "SS", "SSGT4MS"))
        assert rgb.dtype == np.uint8 and rgb.shape == (*shape, 3)
        assert sin.dtype == cos.dtype == dolp.dtype == np.float32 and sin.shape == cos.shape == dolp.shape == shape
        np.testing.assert_allclose(sin.astype(np.float64) ** 2 + cos.astype(np.float64) ** 2, 1.0, atol=1e-5)
        assert dolp.min() >= 0 and dolp.max() <= 1
        assert nir.dtype == np.uint16 and nir.shape == shape and nir.max() > 10000
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255} and (nir[mask == 255] == 0).all()
        assert gt.dtype == ss.dtype == ss4.dtype == np.uint8 and gt.shape == ss.shape == ss4.shape == shape
        assert set(np.unique(gt)) <= {s.id for s in mcubes.SPECS} | {255}


# ------------------------------------------------------------------ reproducibility and validation
@pytest.mark.parametrize("base", list(synth.WRITERS))
def test_same_seed_same_bytes(base: str, tmp_path: Path) -> None:
    kw = {"size": S, "n_train": 2, "n_val": 1, "n_test": 1}
    synthesize(base, tmp_path / "a", seed=5, **kw)
    synthesize(base, tmp_path / "b", seed=5, **kw)
    synthesize(base, tmp_path / "c", seed=6, **kw)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_defaults_and_validation(tmp_path: Path) -> None:
    assert synth_defaults("muses") == {"size": 64, "n_train": 60, "n_val": 20, "n_test": 20, "seed": 0}
    for bad in ({"size": 24}, {"size": 36}, {"size": 64.0}, {"n_val": 0}, {"n_train": True}, {"seed": -1}):
        with pytest.raises(ConfigError):
            synthesize("deliver", tmp_path / "x", **bad)
    with pytest.raises(ConfigError, match="no generator"):
        synthesize("cityscapes", tmp_path / "x")
    with pytest.raises(ConfigError):
        synth_defaults("nope")


def test_visibility_table_is_documented() -> None:
    doc = synth.__doc__
    for base in synth.WRITERS:
        table = visibility_table(base)
        assert len(table) >= 8
        for name, mods in table:
            assert f"    {name:<11} {' '.join(mods) or '-'}\n" in doc
        # every modality alone misses some class
        mods_all = set(_module(base).MODALITY_KINDS)
        for m in mods_all:
            assert any(m not in mods for _, mods in table)


def _module(base: str) -> ModuleType:
    return {"deliver": deliver, "muses": muses, "mcubes": mcubes}[base]


# ------------------------------------------------------------------ complementarity, from the files
def _blur(x: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` -> 5x5 box mean per image and channel (regions are large; pixel noise is not)."""
    return np.stack([np.stack([cv2.blur(np.ascontiguousarray(im[..., c]), (5, 5)) for c in range(x.shape[-1])], -1)
                     for im in x.astype(np.float32)])  # fmt: skip


def _features(base: str, root: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-modality feature maps ``[N, H, W, C]`` (NaN where a sparse sensor has no return) and labels."""
    f: dict[str, list[np.ndarray]] = {}
    labels = []
    if base == "deliver":
        for p in sorted(root.glob("img/*/train/*/*_rgb_front.png")):
            rel, stem = p.relative_to(root / "img").parent, p.name[: -len("_rgb_front.png")]
            ev = read_png(root / "event" / rel / f"{stem}_event_front.png")
            ev = cv2.resize(ev, (S, S), interpolation=cv2.INTER_NEAREST)
            lidar = read_png(root / "lidar" / rel / f"{stem}_lidar_front.png")[..., None] / 255.0
            f.setdefault("rgb", []).append(read_png(p) / 255.0)
            f.setdefault("depth", []).append(read_png(root / "hha" / rel / f"{stem}_depth_front.png") / 255.0)
            f.setdefault("event", []).append((ev[..., [0, 2]] > 0).astype(float))
            f.setdefault("lidar", []).append(np.where(lidar > 0, lidar, np.nan))
            labels.append(read_png(root / "semantic" / rel / f"{stem}_semantic_front.png")[..., 0].astype(int) - 1)
    elif base == "muses":
        scale = np.array([50.0, 100.0, 3.0])
        for p in sorted(root.glob("frame_camera/train/*/*/*_frame_camera.png")):
            rel, stem = p.relative_to(root / "frame_camera").parent, p.name[: -len("_frame_camera.png")]
            proj = {m: read_png(root / "projected_to_rgb" / m / rel / f"{stem}_{m}.png") for m in ("lidar", "radar")}
            f.setdefault("frame", []).append(read_png(p) / 255.0)
            ev = read_png(root / "projected_to_rgb/event_camera" / rel / f"{stem}_event_camera.png")
            f.setdefault("event", []).append((ev[..., :2] > 0).astype(float))
            for m, img in proj.items():
                v = (img / 150.0 - 100.0) / scale
                f.setdefault(m, []).append(np.where((img == 15000).all(-1, keepdims=True), np.nan, v))
            labels.append(read_png(root / "gt_semantic" / rel / f"{stem}_gt_labelTrainIds.png").astype(int))
    else:
        crop = mcubes.LEFT_OFFSET
        for n in (root / "list_folder/train.txt").read_text().split():
            f.setdefault("rgb", []).append(read_png(root / "polL_color" / f"{n}.png")[:, crop:] / 255.0)
            aolp = [read_npy(root / d / f"{n}.npy")[:, crop:] for d in ("polL_aolp_sin", "polL_aolp_cos")]
            f.setdefault("aolp", []).append(np.stack(aolp, -1))
            f.setdefault("dolp", []).append(read_npy(root / "polL_dolp" / f"{n}.npy")[:, crop:, None])
            f.setdefault("nir", []).append(read_png(root / "NIR_warped" / f"{n}.png")[:, crop:, None] / 65535.0)
            labels.append(read_png(root / "GT" / f"{n}.png")[:, crop:].astype(int))
    return {k: np.stack(v) for k, v in f.items()}, np.stack(labels)


def _separation(feats: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, dict[tuple[int, int], float]]:
    """Modality -> class pair -> paired effect size ``max_c |mean(d)| / std(d)`` over the images holding both.

    ``d`` is the within-image difference of the two classes' mean (5x5-averaged) features, so
    global light, exposure and weather cancel (RGB is also standardised per image); sparse
    sensors are averaged over their returns only.
    """
    out: dict[str, dict[tuple[int, int], float]] = {}
    for m, x in feats.items():
        valid = ~np.isnan(x)
        den = _blur(valid.astype(np.float32))
        x, ok = _blur(np.nan_to_num(x)) / np.maximum(den, 1e-6), den[..., 0] > 0.1
        if m in ("rgb", "frame"):  # contrast, not light level, carries colour under night and fog
            x = (x - x.mean(axis=(1, 2), keepdims=True)) / (x.std(axis=(1, 2), keepdims=True) + 0.01)
        means: list[dict[int, np.ndarray]] = []
        for xi, li, oi in zip(x, labels, ok, strict=True):
            means.append({int(c): xi[(li == c) & oi].mean(0) for c in np.unique(li) if ((li == c) & oi).sum() >= 8})
        classes = sorted({c for mi in means for c in mi if 0 <= c < 255})
        out[m] = {}
        for i, a in enumerate(classes):
            for b in classes[i + 1 :]:
                d = np.array([mi[a] - mi[b] for mi in means if a in mi and b in mi])
                if len(d) >= 8:
                    out[m][(a, b)] = float(np.max(np.abs(d.mean(0)) / (d.std(0) + 1e-3)))
    return out


@pytest.mark.parametrize("base", list(synth.WRITERS))
def test_each_modality_misses_a_pair_another_sees(base: str, tmp_path: Path) -> None:
    """For every modality, a class pair designed to look the same there (equal signature) is
    statistically indistinguishable in its files, and clearly distinguishable in another modality."""
    synthesize(base, tmp_path, size=S, n_train=60, n_val=1, n_test=1, seed=11)
    sep = _separation(*_features(base, tmp_path))
    mod = _module(base)
    for m, kind in mod.MODALITY_KINDS.items():
        if m == "radar":  # optional in MUSES, and too sparse at 32 px for per-image class means
            continue
        found = []
        for i, a in enumerate(mod.SPECS):
            for b in mod.SPECS[i + 1 :]:
                key = (min(a.id, b.id), max(a.id, b.id))
                if scene.signature(a, kind, mod.SPECS) != scene.signature(b, kind, mod.SPECS) or key not in sep[m]:
                    continue
                best_other = max(sep[o].get(key, 0.0) for o in sep if o != m)
                if sep[m][key] < 0.5 and best_other > 1.0:
                    found.append((a.name, b.name))
        assert found, f"{base}/{m}: no class pair hidden in {m} but visible elsewhere"


# ------------------------------------------------------------------ the loaders read what the generator writes
_SHAPES = {
    "deliver": ({"rgb", "depth", "event", "lidar"}, (S, S)),
    "muses": ({"frame", "event", "lidar"}, (S, round(S * 16 / 9))),
    "mcubes": ({"rgb", "aolp", "dolp", "nir"}, (S, S)),
}


@pytest.mark.parametrize("base", list(synth.WRITERS))
def test_loader_round_trip(base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from rsbench.data import create_dataset

    monkeypatch.setenv("RSBENCH_CACHE", str(tmp_path))
    mods, hw = _SHAPES[base]
    settings = {"size": S, "n_train": 10, "n_val": 5, "n_test": 5, "seed": 1}
    for split in ("train", "val", "test"):
        ds = create_dataset(f"{base}-synth", split=split, synth=settings)
        assert ds.name == f"{base}-synth" and len(ds) >= 5
        assert ds.check() == []
        sample = ds[0]
        assert set(sample["modalities"]) == mods
        for x in sample["modalities"].values():
            assert x.shape == (3, *hw) and x.dtype == torch.float32 and bool(torch.isfinite(x).all())
        assert sample["label"].shape == hw
        lab = sample["label"]
        assert ((lab < ds.info.num_classes) | (lab == 255)).all()
