"""``EvalResize`` reproduces the released evaluation resize: torchvision's ``resize`` on the stored
8-bit image (bilinear, antialias, rounded back to uint8), then normalisation; label nearest.

The references here are written from the release's formulas with torchvision itself
(``augmentations_mm.Resize``: short side to ``size`` with ``round``, then each side up to a
multiple of 32, two ``TF.resize`` calls; ``Normalize``: ``/255``, ImageNet mean/std on RGB only),
and read the files independently of rsbench's loaders.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rsbench.data import create_dataset
from rsbench.data.base import IMAGENET_MEAN, IMAGENET_STD
from rsbench.data.muses import NORM_STATS, PROJECTED_OFFSET, PROJECTED_SCALE
from rsbench.data.transforms import EvalResize, eval_sizes, resize_array, resize_label, resize_sample
from rsbench.errors import ConfigError
from tests.fixtures_deliver import write_deliver_sample

TF = pytest.importorskip("torchvision.transforms.functional")
BILINEAR, NEAREST = TF.InterpolationMode.BILINEAR, TF.InterpolationMode.NEAREST

SMALL = {"n_train": 2, "n_val": 4, "n_test": 2, "seed": 0}
MEAN, STD = IMAGENET_MEAN.tolist(), IMAGENET_STD.tolist()


# ----------------------------------------------------------------- references (torchvision)
def released_steps(h: int, w: int, size: int) -> list[tuple[int, int]]:
    """The two sizes the released ``Resize`` passes to ``TF.resize`` (its formulas, restated)."""
    scale = size / min(h, w)
    nh, nw = round(h * scale), round(w * scale)
    return [(nh, nw), (int(math.ceil(nh / 32)) * 32, int(math.ceil(nw / 32)) * 32)]


def tv_resize(x: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """Released order on one ``[C, H, W]`` tensor: both ``TF.resize`` calls, bilinear."""
    for step in released_steps(*x.shape[-2:], size):
        x = TF.resize(x, list(step), BILINEAR, antialias=antialias)
    return x


def tv_resize_rounded(x: np.ndarray, size: int) -> torch.Tensor:
    """A 16-bit plane, resized in float and rounded at each step (rsbench's rule for uint16, see test below)."""
    t = torch.from_numpy(x.astype(np.float32))
    for step in released_steps(*t.shape[-2:], size):
        t = TF.resize(t, list(step), BILINEAR).round()
    return t


def tv_label(label: torch.Tensor, size: int) -> torch.Tensor:
    """``[H, W]`` uint8 label resized NEAREST in the released two steps."""
    x = label[None]
    for step in released_steps(*x.shape[-2:], size):
        x = TF.resize(x, list(step), NEAREST)
    return x[0].long()


def read_chw(path: Path) -> np.ndarray:
    """A PNG as stored, ``[C, H, W]`` RGB order, via OpenCV (independent of ``rsbench.io``)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        return img[None]
    return np.ascontiguousarray(img[:, :, [2, 1, 0]].transpose(2, 0, 1))


def assert_same(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Bit-exact: the same float32 operations in the same order."""
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    assert torch.equal(got, want), f"{what}: max |diff| {(got.double() - want.double()).abs().max().item()}"


# ------------------------------------------------------------------------ the resize itself
SIZES = [
    ((1042, 1042), (1024, 1024)),  # real DELIVER scored at 1024
    ((1042, 1042), (1000, 1000)),
    ((1080, 1920), (1024, 1820)),  # real MUSES, first released step at 1024
    ((1024, 1820), (1024, 1824)),  # ... and the second (multiple of 32)
    ((37, 53), (32, 46)),
    ((33, 31), (17, 29)),
    ((32, 57), (64, 114)),  # upscale
    ((31, 47), (61, 47)),
]


@pytest.mark.parametrize(("src", "dst"), SIZES)
@pytest.mark.parametrize("antialias", [True, False])
def test_uint8_resize_is_bit_exact_with_torchvision(
    src: tuple[int, int], dst: tuple[int, int], antialias: bool
) -> None:
    gen = torch.Generator().manual_seed(src[0] * 7919 + dst[1])
    for channels in (1, 3):
        x = torch.randint(0, 256, (channels, *src), dtype=torch.uint8, generator=gen)
        want = TF.resize(x, list(dst), BILINEAR, antialias=antialias)
        got = resize_array(x.numpy(), dst, antialias)
        assert got.dtype == np.uint8
        assert torch.equal(torch.from_numpy(got), want), (src, dst, channels)


def test_smooth_image_and_extremes_bit_exact() -> None:
    """Natural-image-like ramps and saturated pixels (rounding at .5 and at 0/255)."""
    yy, xx = np.mgrid[0:1042, 0:1042]
    img = np.stack([(xx * 255 // 1041), (yy * 255 // 1041), ((xx + yy) % 256)]).astype(np.uint8)
    img[:, 500:520, 500:520] = 255
    img[:, 100:110, :] = 0
    want = TF.resize(torch.from_numpy(img), [1024, 1024], BILINEAR)
    assert torch.equal(torch.from_numpy(resize_array(img, (1024, 1024))), want)


def test_torchvision_default_is_antialias() -> None:
    """The release calls ``TF.resize`` without ``antialias``: on tensors that is antialias since torchvision 0.17."""
    x = torch.randint(0, 256, (3, 1042, 1042), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(TF.resize(x, [1024, 1024], BILINEAR), TF.resize(x, [1024, 1024], BILINEAR, antialias=True))


def test_label_nearest_matches_torchvision() -> None:
    label = torch.randint(0, 26, (45, 71), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    for dst in ((32, 50), (64, 96), (45, 71)):
        got = resize_label(label.numpy().astype(np.int64), dst)
        want = TF.resize(label[None], list(dst), NEAREST)[0]
        assert got.dtype == np.int64 and np.array_equal(got, want.numpy().astype(np.int64))


def test_float_planes_match_torchvision() -> None:
    x = torch.rand((3, 40, 71), generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.from_numpy(resize_array(x.numpy(), (32, 57))), TF.resize(x, [32, 57], BILINEAR))


def test_uint16_is_rounded() -> None:
    """16-bit files are resized in float and rounded half to even (torchvision would truncate uint16)."""
    x = np.random.default_rng(4).integers(0, 65536, (3, 40, 71)).astype(np.uint16)
    got = resize_array(x, (32, 57))
    want = TF.resize(torch.from_numpy(x.astype(np.float32)), [32, 57], BILINEAR).round().numpy()
    assert got.dtype == np.uint16 and np.array_equal(got.astype(np.float32), want)


@pytest.mark.parametrize(("h", "w", "size"), [(1042, 1042, 1024), (1080, 1920, 1024), (32, 57, 32), (48, 48, 44)])
def test_sizes_follow_the_release(h: int, w: int, size: int) -> None:
    assert list(eval_sizes(h, w, size)) == released_steps(h, w, size)
    assert EvalResize(size).output_size(h, w) == released_steps(h, w, size)[1]


def test_same_result_with_any_thread_count() -> None:
    x = np.random.default_rng(5).integers(0, 256, (3, 130, 131)).astype(np.uint8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = resize_array(x, (128, 128))
        torch.set_num_threads(max(2, before))
        many = resize_array(x, (128, 128))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one, many)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        EvalResize(0)
    with pytest.raises(ConfigError, match="method"):
        EvalResize(32, method="bicubic")  # type: ignore[arg-type]
    assert EvalResize(32).method == "antialias" and EvalResize(32).raw_input
    assert not EvalResize(32, method="float").raw_input


# ------------------------------------------------------------------ through the datasets
def deliver_reference(ds, i: int, size: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The released DELIVER ``__getitem__`` + ``get_val_augmentation(size)`` on the same files."""
    ref = ds.samples[i]
    rgb = torch.from_numpy(read_chw(ref.files["rgb"]))[:3]  # released: torchvision.io.read_image, same pixels
    h, w = rgb.shape[1:]
    raw = {"rgb": rgb}
    for name in ds.modalities[1:]:
        img = torch.from_numpy(read_chw(ref.files[name]))
        img = img[:3] if img.shape[0] == 4 else img.repeat(3, 1, 1) if img.shape[0] == 1 else img
        raw[name] = TF.resize(img, [h, w], NEAREST) if name == "event" else img
    label = torch.from_numpy(read_chw(ref.files["label"])[0])
    label[label == 255] = 0
    label -= 1  # uint8: unlabelled 0 -> 255
    out = {}
    for name, img in raw.items():
        x = tv_resize(img, size).float() / 255
        out[name] = TF.normalize(x, MEAN, STD) if name == "rgb" else x
    return out, tv_label(label, size)


@pytest.mark.parametrize(("synth", "size"), [(40, 32), (48, 44), (32, 24), (32, 40)])
def test_deliver_sample_equals_released_transform(synth: int, size: int) -> None:
    ds = create_dataset("deliver-synth", split="val", synth={**SMALL, "size": synth}, transform=EvalResize(size))
    for i in range(len(ds)):
        sample = ds[i]
        want_mods, want_label = deliver_reference(ds, i, size)
        for name, want in want_mods.items():
            assert_same(sample["modalities"][name], want, f"{ds.samples[i].id} {name}")
        assert torch.equal(sample["label"], want_label)


def test_deliver_file_formats_equal_released_transform(tmp_path: Path) -> None:
    """Half-size events (``eventlowres``), RGBA RGB, 1-channel HHA and LiDAR, at a 1042 -> 1024 style ratio."""
    write_deliver_sample(tmp_path, split="val", scene="MAP_1_point12_eventlowres", size=66, event_size=33,
                         depth_channels=1, alpha=("rgb",), seed=3)
    write_deliver_sample(tmp_path, split="val", scene="MAP_2_point3", frame="000100", size=66, seed=4)
    ds = create_dataset("deliver", root=tmp_path, split="val", transform=EvalResize(64))
    assert {r.meta["case"] for r in ds.samples} == {"eventlowres", "normal"}
    for i in range(len(ds)):
        sample = ds[i]
        want_mods, want_label = deliver_reference(ds, i, 64)
        for name, want in want_mods.items():
            assert_same(sample["modalities"][name], want, f"{ds.samples[i].id} {name}")
        assert torch.equal(sample["label"], want_label)


def muses_reference(ds, i: int, size: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """rsbench's conversions (module docstring) applied after torchvision's resize of the stored image."""
    ref = ds.samples[i]
    out = {}
    for name in ds.modalities:
        raw = read_chw(ref.files[name])
        if name == "frame":
            x = tv_resize(torch.from_numpy(raw[:3]), size).float() / 255
            out[name] = TF.normalize(x, MEAN, STD)
            continue
        if name == "event":
            x = tv_resize(torch.from_numpy(raw), size).float()
        else:  # lidar/radar uint16, stats: resized in the file's type, then decoded
            x = tv_resize_rounded(raw, size) / PROJECTED_SCALE - PROJECTED_OFFSET
        mean, std = NORM_STATS[name]
        out[name] = TF.normalize(x, mean.tolist(), std.tolist())
    label = torch.from_numpy(read_chw(ref.files["label"])[0])
    return out, tv_label(label, size)


@pytest.mark.parametrize(("synth", "size"), [(40, 32), (32, 32), (48, 40)])
def test_muses_sample_equals_resize_then_normalise(synth: int, size: int) -> None:
    ds = create_dataset("muses-synth", split="val", synth={**SMALL, "size": synth},
                        modalities=["frame", "event", "lidar", "radar"], transform=EvalResize(size))
    for i in range(len(ds)):
        sample = ds[i]
        want_mods, want_label = muses_reference(ds, i, size)
        for name, want in want_mods.items():
            assert_same(sample["modalities"][name], want, f"{ds.samples[i].id} {name}")
        assert torch.equal(sample["label"], want_label)


def test_muses_minmax_is_taken_after_the_resize() -> None:
    """``lidar_norm="minmax"``: RobustSeg's order, the 8-bit Pillow reading resized, then min-max."""
    ds = create_dataset("muses-synth", split="val", synth={**SMALL, "size": 40}, lidar_norm="minmax",
                        transform=EvalResize(32))
    ref = ds.samples[0]
    raw8 = torch.from_numpy((read_chw(ref.files["lidar"]) >> 8).astype(np.uint8))
    x = tv_resize(raw8, 32).float()
    want = (x - x.min()) / (x.max() - x.min()) * 255.0
    assert_same(ds[0]["modalities"]["lidar"], want, "lidar minmax")


def mcubes_reference(ds, i: int, size: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    ref, off = ds.samples[i], ds.left_offset
    rgb = read_chw(ref.files["rgb"])[:3, :, off:]
    nir = read_chw(ref.files["nir"])[:, :, off:]
    sin, cos, dolp = (np.load(ref.files[k])[None, :, off:].astype(np.float32) for k in ("aolp", "aolp_cos", "dolp"))
    rgb_scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    if rgb.dtype == np.uint8:
        rgb_t = tv_resize(torch.from_numpy(rgb), size).float() / rgb_scale
    else:
        rgb_t = tv_resize_rounded(rgb, size) / rgb_scale
    nir_t = (tv_resize(torch.from_numpy(nir), size).float() / 255 if nir.dtype == np.uint8
             else tv_resize_rounded(nir, size) / 65535.0)
    out = {
        "rgb": TF.normalize(rgb_t, MEAN, STD),
        "aolp": tv_resize(torch.from_numpy(np.concatenate([sin, cos, sin])), size),
        "dolp": tv_resize(torch.from_numpy(dolp), size).repeat(3, 1, 1),
        "nir": nir_t.repeat(3, 1, 1),
    }
    label = torch.from_numpy(read_chw(ref.files["label"])[0, :, off:])
    return out, tv_label(label, size)


@pytest.mark.parametrize(("synth", "size"), [(40, 32), (32, 24)])
def test_mcubes_sample_equals_resize_then_normalise(synth: int, size: int) -> None:
    ds = create_dataset("mcubes-synth", split="val", synth={**SMALL, "size": synth}, transform=EvalResize(size))
    for i in range(len(ds)):
        sample = ds[i]
        want_mods, want_label = mcubes_reference(ds, i, size)
        for name, want in want_mods.items():
            assert_same(sample["modalities"][name], want, f"{ds.samples[i].id} {name}")
        assert torch.equal(sample["label"], want_label)


@pytest.mark.parametrize(("name", "size"), [("deliver-synth", 32), ("muses-synth", 288), ("mcubes-synth", 32)])
def test_native_size_is_unchanged(name: str, size: int) -> None:
    """At a size that resizes nothing, every method gives the sample of the untransformed loader.

    (MUSES files are ``size x round(size * 16 / 9)``: 288 x 512 is the smallest with both sides
    multiples of 32; real 1080 x 1920 is always resized, to 1088 x 1920 at its native 1080.)
    """
    synth = {"n_train": 1, "n_val": 2, "n_test": 1, "seed": 0, "size": size}
    plain = create_dataset(name, split="val", synth=synth)
    assert plain[0]["label"].shape[0] % 32 == 0 and plain[0]["label"].shape[1] % 32 == 0
    for method in ("antialias", "bilinear", "float"):
        ds = create_dataset(name, split="val", synth=synth, transform=EvalResize(size, method=method))
        for i in range(len(ds)):
            a, b = ds[i], plain[i]
            assert torch.equal(a["label"], b["label"])
            for k in a["modalities"]:
                assert torch.equal(a["modalities"][k], b["modalities"][k]), (name, method, k)


def test_float_method_is_the_previous_path() -> None:
    """``method="float"``: the converted floats interpolated once to the final size (rsbench before this change)."""
    plain = create_dataset("deliver-synth", split="val", synth={**SMALL, "size": 40})
    ds = create_dataset("deliver-synth", split="val", synth={**SMALL, "size": 40}, transform=EvalResize(32, "float"))
    for i in range(len(ds)):
        want = resize_sample(plain[i], (32, 32))
        got = ds[i]
        assert torch.equal(got["label"], want["label"])
        for k in got["modalities"]:
            assert torch.equal(got["modalities"][k], want["modalities"][k])


def test_released_path_differs_from_the_float_path_on_a_downscale() -> None:
    """The reason for the change: antialias + rounding on the 8-bit image moves values (1042 -> 1024 style)."""
    kwargs = {"split": "val", "synth": {**SMALL, "size": 40}}
    new = create_dataset("deliver-synth", transform=EvalResize(32), **kwargs)[0]["modalities"]["rgb"]
    old = create_dataset("deliver-synth", transform=EvalResize(32, "float"), **kwargs)[0]["modalities"]["rgb"]
    assert new.shape == old.shape and (new - old).abs().max() > 0.05


def test_call_on_a_finished_sample_uses_the_same_filter() -> None:
    """Outside a loader (no raw arrays) the transform resizes the floats with the same steps, not rounded."""
    plain = create_dataset("deliver-synth", split="val", synth={**SMALL, "size": 40})
    sample = plain[0]
    got = EvalResize(32)(sample)
    for k, v in sample["modalities"].items():
        want = TF.resize(v, [32, 32], BILINEAR)
        assert torch.equal(got["modalities"][k], want)
    assert torch.equal(got["label"], tv_label(sample["label"].to(torch.uint8), 32))
