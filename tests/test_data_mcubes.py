"""Tests for the MCubeS loader on hand-written files in the released layout (no real data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rsbench.data import create_dataset
from rsbench.data.base import IMAGENET_MEAN, IMAGENET_STD
from rsbench.data.mcubes import McubesDataset
from rsbench.errors import ConfigError, DataError
from rsbench.io import write_npy, write_png, write_text

H, W, OFF = 32, 192 + 32, 192
NAMES = {
    "train": ["outscene1208_2_0000000150", "outscene1208_2_0000000300"],
    "val": ["outscene0101_1_0000000010"],
    "test": ["outscene0202_3_0000000020", "outscene0202_3_0000000040"],
}


def write_sample(root: Path, name: str, seed: int = 0, nir_bits: int = 16, h: int = H, w: int = W) -> None:
    """Every file the published loader reads for ``name``, in the released formats."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, np.pi, (h, w))
    write_png(root / "polL_color" / f"{name}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    write_npy(root / "polL_aolp_sin" / f"{name}.npy", np.sin(angle).astype(np.float32))
    write_npy(root / "polL_aolp_cos" / f"{name}.npy", np.cos(angle).astype(np.float32))
    write_npy(root / "polL_dolp" / f"{name}.npy", rng.uniform(0, 1, (h, w)).astype(np.float32))
    nir = rng.integers(0, 2**nir_bits, (h, w), dtype=np.uint16 if nir_bits == 16 else np.uint8)
    write_png(root / "NIR_warped" / f"{name}.png", nir)
    mask = np.zeros((h, w), np.uint8)
    mask[:4] = 255
    write_png(root / "NIR_warped_mask" / f"{name}.png", mask)
    label = rng.integers(0, 20, (h, w), dtype=np.uint8)
    label[-1, -1] = 255
    write_png(root / "GT" / f"{name}.png", label)
    write_png(root / "SS" / f"{name}.png", rng.integers(0, 20, (h, w), dtype=np.uint8))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    # A root path full of words that substring-matching loaders would trip on.
    base = tmp_path / "rain_night" / "img" / "multimodal_dataset"
    for i, names in enumerate(NAMES.values()):
        for j, name in enumerate(names):
            write_sample(base, name, seed=10 * i + j)
    for split, names in NAMES.items():
        write_text(base / "list_folder" / f"{split}.txt", "".join(f"{n} extra_token\n\n" for n in names))
    write_text(base / "list_folder" / "all.txt", "\n".join(n for v in NAMES.values() for n in v))
    return base


def test_sample_contract(root: Path) -> None:
    ds = McubesDataset(root, split="train")
    assert len(ds) == 2 and [r.id for r in ds.samples] == NAMES["train"]
    s = ds[0]
    assert list(s["modalities"]) == ["rgb", "aolp", "dolp", "nir"]
    for x in s["modalities"].values():
        assert x.shape == (3, H, W - OFF) and x.dtype == torch.float32
    lab = s["label"]
    assert lab.shape == (H, W - OFF) and lab.dtype == torch.int64
    ok = (lab == 255) | ((lab >= 0) & (lab < 20))
    assert bool(ok.all()) and int(lab[-1, -1]) == 255
    assert s["meta"] == {"id": NAMES["train"][0], "dataset": "mcubes", "split": "train", "scene": "outscene1208_2"}
    assert ds.info.num_classes == 20 and len(ds.info.palette) == 20 and ds.info.classes[19] == "sky"
    assert ds.check() == [] and ds.counts() == {"all": 2}


def test_known_values_channels_and_crop(root: Path) -> None:
    name = NAMES["train"][0]
    sin = np.broadcast_to(np.arange(W, dtype=np.float32) / W, (H, W)).copy()
    cos = -sin
    dolp = np.broadcast_to(np.arange(H, dtype=np.float32)[:, None] / H, (H, W)) + sin
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :OFF] = 255
    rgb[:, OFF:, 0], rgb[:, OFF:, 1], rgb[:, OFF:, 2] = 10, 20, 30
    label = np.full((H, W), 255, np.uint8)
    label[:, OFF:] = np.arange(W - OFF) % 20
    write_npy(root / "polL_aolp_sin" / f"{name}.npy", sin)
    write_npy(root / "polL_aolp_cos" / f"{name}.npy", cos)
    write_npy(root / "polL_dolp" / f"{name}.npy", dolp.astype(np.float32))
    write_png(root / "polL_color" / f"{name}.png", rgb)
    write_png(root / "GT" / f"{name}.png", label)
    s = McubesDataset(root, split="train")[0]
    aolp, d = s["modalities"]["aolp"].numpy(), s["modalities"]["dolp"].numpy()
    np.testing.assert_array_equal(aolp[0], sin[:, OFF:])
    np.testing.assert_array_equal(aolp[1], cos[:, OFF:])
    np.testing.assert_array_equal(aolp[2], sin[:, OFF:])
    assert aolp[0, 0, 0] == np.float32(OFF / W)  # column 192 is the first kept column
    for c in range(3):
        np.testing.assert_array_equal(d[c], dolp[:, OFF:].astype(np.float32))
    expect = (np.array([10, 20, 30], np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(s["modalities"]["rgb"].numpy()[:, 5, 7], expect, rtol=1e-6)
    np.testing.assert_array_equal(s["label"].numpy(), label[:, OFF:].astype(np.int64))


@pytest.mark.parametrize("bits", [8, 16])
def test_nir_scaling(root: Path, bits: int) -> None:
    name = NAMES["train"][0]
    nir = np.zeros((H, W), np.uint16 if bits == 16 else np.uint8)
    nir[:, OFF:] = 2**bits - 1
    nir[0, OFF] = 2 ** (bits - 1)
    write_png(root / "NIR_warped" / f"{name}.png", nir)
    x = McubesDataset(root, split="train", modalities=["nir"])[0]["modalities"]["nir"].numpy()
    assert x.shape == (3, H, W - OFF)
    assert np.all(x[:, 1:] == 1.0) and np.all(x[:, 0, 0] == np.float32(2 ** (bits - 1) / (2**bits - 1)))


def test_uint16_rgb_scaling(root: Path) -> None:
    name = NAMES["train"][0]
    write_png(root / "polL_color" / f"{name}.png", np.full((H, W, 3), 65535, np.uint16))
    x = McubesDataset(root, split="train", modalities=["rgb"])[0]["modalities"]["rgb"].numpy()
    np.testing.assert_allclose(x[:, 0, 0], (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-6)


def test_val_list_quirk(root: Path) -> None:
    assert [r.id for r in McubesDataset(root, split="val").samples] == NAMES["val"]
    quirk = McubesDataset(root, split="val", val_from_test_list=True)
    assert [r.id for r in quirk.samples] == NAMES["test"] and quirk.list_file().name == "test.txt"
    assert [r.id for r in McubesDataset(root, split="test").samples] == NAMES["test"]


def test_nir_mask_ignore(root: Path) -> None:
    plain = McubesDataset(root, split="train")[0]["label"]
    masked = McubesDataset(root, split="train", nir_mask_ignore=True)[0]["label"]
    assert bool((masked[:4] == 255).all())
    assert torch.equal(masked[4:], plain[4:]) and not bool((plain[:4] == 255).all())


def test_options_validated_and_offset_configurable(root: Path) -> None:
    for bad in (-1, 1.5, True, "192"):
        with pytest.raises(ConfigError, match="left_offset"):
            McubesDataset(root, left_offset=bad)
    s = McubesDataset(root, left_offset=0)[0]
    assert s["label"].shape == (H, W)
    with pytest.raises(DataError, match=r"GT.*width 224 is not larger than left_offset 224"):
        McubesDataset(root, left_offset=W)[0]
    with pytest.raises(ConfigError):
        McubesDataset(root, conditions=["rain"])


def test_parent_root_and_create_dataset(root: Path) -> None:
    ds = create_dataset("mcubes", root=root.parent, split="test", modalities=["rgb", "dolp"])
    assert ds.root == root and len(ds) == 2 and list(ds[1]["modalities"]) == ["rgb", "dolp"]
    assert set(ds.samples[0].files) == {"rgb", "dolp", "label", "nir_mask", "ss"}


def test_missing_root(tmp_path: Path) -> None:
    for path in (tmp_path / "nope", tmp_path):
        with pytest.raises(DataError, match="mcubes-synth") as info:
            McubesDataset(path)
        assert "list_folder/{train,val,test}.txt" in str(info.value) and "\n" not in str(info.value)


def test_missing_and_empty_split_list(root: Path) -> None:
    (root / "list_folder" / "val.txt").unlink()
    with pytest.raises(DataError, match=r"val\.txt"):
        McubesDataset(root, split="val")
    write_text(root / "list_folder" / "val.txt", "\n  \n")
    with pytest.raises(DataError, match="split 'val' is empty"):
        McubesDataset(root, split="val")


def test_bad_names_and_duplicates(root: Path) -> None:
    write_text(root / "list_folder" / "train.txt", f"{NAMES['train'][0]}\n{NAMES['train'][0]}\n")
    assert len(McubesDataset(root)) == 1
    write_text(root / "list_folder" / "train.txt", "../escape\n")
    with pytest.raises(DataError, match=r"train\.txt:1"):
        McubesDataset(root)


def test_truncated_png(root: Path) -> None:
    path = root / "polL_color" / f"{NAMES['train'][0]}.png"
    path.write_bytes(path.read_bytes()[:60])
    ds = McubesDataset(root)
    with pytest.raises(DataError, match="polL_color"):
        ds[0]
    problems = ds.check()
    assert [(p.sample, p.kind) for p in problems] == [(NAMES["train"][0], "invalid")]


def test_label_out_of_range(root: Path) -> None:
    name = NAMES["train"][0]
    label = np.zeros((H, W), np.uint8)
    label[3, OFF + 2] = 20
    write_png(root / "GT" / f"{name}.png", label)
    with pytest.raises(DataError, match="label id 20 out of range"):
        McubesDataset(root)[0]
    label[3, OFF + 2] = 200
    label[3, 0] = 20  # in the dropped columns: never seen
    write_png(root / "GT" / f"{name}.png", label)
    with pytest.raises(DataError, match="label id 200"):
        McubesDataset(root)[0]


@pytest.mark.parametrize(
    "arr",
    [np.zeros((H, W - 1), np.float32), np.zeros((H, W, 1), np.float32), np.zeros((H, W), np.int32)],
    ids=["wrong-size", "3-d", "integer"],
)
def test_bad_npy(root: Path, arr: np.ndarray) -> None:
    path = root / "polL_aolp_cos" / f"{NAMES['train'][0]}.npy"
    write_npy(path, arr)
    with pytest.raises(DataError, match="polL_aolp_cos") as info:
        McubesDataset(root)[0]
    assert "\n" not in str(info.value)
    assert McubesDataset(root, modalities=["rgb", "dolp", "nir"])[0]["label"].shape == (H, W - OFF)


class _Exploit:
    """Unpickling this runs ``os.mkdir(target)``: the loader must refuse before that happens."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_pickled_npy_rejected(root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    arr = np.empty((H, W), dtype=object)
    arr[0, 0] = _Exploit(str(marker))
    path = root / "polL_dolp" / f"{NAMES['train'][0]}.npy"
    np.save(path, arr, allow_pickle=True)
    with pytest.raises(DataError, match="polL_dolp"):
        McubesDataset(root)[0]
    assert not marker.exists()


def test_check_reports_missing_partner(root: Path) -> None:
    name = NAMES["train"][1]
    ss = root / "SS" / f"{name}.png"
    ss.unlink()
    ds = McubesDataset(root)
    problems = ds.check()
    assert [(p.sample, p.kind, p.detail) for p in problems] == [(name, "missing", str(ss))]
    with pytest.raises(DataError, match=r"SS/outscene1208_2_0000000300\.png"):
        ds[1]
    (root / "NIR_warped_mask" / f"{NAMES['train'][0]}.png").unlink()
    assert {p.detail.split(os.sep)[-2] for p in ds.check()} == {"SS", "NIR_warped_mask"}


def test_partner_size_mismatch(root: Path) -> None:
    name = NAMES["train"][0]
    write_png(root / "NIR_warped" / f"{name}.png", np.zeros((H, W + 8), np.uint16))
    with pytest.raises(DataError, match="NIR_warped.*differs from the label"):
        McubesDataset(root)[0]
    write_png(root / "NIR_warped" / f"{name}.png", np.zeros((H, W, 3), np.uint16))
    with pytest.raises(DataError, match=r"NIR_warped.*\[H, W\]"):
        McubesDataset(root)[0]
