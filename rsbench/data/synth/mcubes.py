"""Generated MCubeS look-alike (DATASETS.md sections 3 and 4): files ``size x (192 + size)``.

The published loaders drop the first 192 columns, which leaves a ``size x size`` view; the
scene is laid out so that this visible window holds the street (the dropped columns still
hold valid data). Tree: ``polL_color/{name}.png`` (uint8 RGB), ``polL_aolp_sin/`` and
``polL_aolp_cos/{name}.npy`` (float32, sin/cos of the AoLP in [0, pi), so sin^2 + cos^2 = 1),
``polL_dolp/{name}.npy`` (float32 in [0, 1]), ``NIR_warped/{name}.png`` (uint16 1-ch,
``reflectance * illumination * 60000`` + noise), ``NIR_warped_mask/{name}.png`` (uint8, 255 =
invalid NIR: a band at the left edge, NIR = 0 there), ``GT/{name}.png`` (uint8 material id,
255 = unlabelled), ``SS/`` (uint8 Cityscapes trainIds from the material: our mapping) and
``SSGT4MS/`` (uint8, 10 condensed classes; the real names are unpublished, ours are
ground, building, vegetation, sky, person), and ``list_folder/{all,train,val,test}.txt``.
Names are ``outscene{MMDD}_{k}_{frame:010d}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsbench.data.synth import scene as sc
from rsbench.io import write_npy, write_png, write_text

LEFT_OFFSET = 192
MODALITY_KINDS = {"rgb": "appearance", "aolp": "aolp", "dolp": "dolp", "nir": "nir"}
_DATES = ("1208", "1205", "0115", "0521", "1211", "0603", "0918")

_DARK = ((70, 70, 78),)
_GREEN = ((70, 125, 50), (85, 130, 55))
_LIGHT = ((160, 158, 150),)
_SKY = ((140, 170, 200),)
SPECS = [
    sc.ClassSpec(0, "asphalt", "ground", _DARK, "noise", nir=0.28, dolp=0.04, weight=1.3),
    sc.ClassSpec(1, "concrete", "back", _LIGHT, "noise", nir=0.45, dolp=0.04),
    sc.ClassSpec(2, "metal", "back", _LIGHT, "noise", nir=0.45, dolp=0.3, aolp=np.pi / 2),
    sc.ClassSpec(5, "glass", "back", _SKY, "windows", nir=0.1, dolp=0.6, aolp=np.pi / 2),
    sc.ClassSpec(7, "plastic", "ground", _GREEN, "blobs", nir=0.12, dolp=0.04),
    sc.ClassSpec(13, "brick", "back", ((150, 75, 55), (130, 65, 50)), "stripes", nir=0.45, dolp=0.04),
    sc.ClassSpec(14, "grass", "ground", _GREEN, "blobs", nir=0.8, dolp=0.04),
    sc.ClassSpec(17, "water", "ground", _DARK, "noise", nir=0.03, dolp=0.45, aolp=0.0),
    sc.ClassSpec(18, "human", "object", ((200, 60, 60), (60, 60, 180), (220, 200, 80), (50, 50, 50)), "noise",
                 shape="person", size_m=(1.6, 1.9, 0.5, 0.7), nir=0.6, dolp=0.04),
    sc.ClassSpec(19, "sky", "sky", _SKY, "flat", nir=0.1, dolp=0.15, aolp=np.pi / 4),
]  # fmt: skip
LAYOUT = sc.Layout(back_depth=(12.0, 30.0), back_height=(4.0, 15.0), n_objects=(0, 3), object_depth=(4.0, 12.0))
SS_OF = {0: 0, 17: 0, 1: 2, 2: 2, 5: 2, 13: 2, 7: 9, 14: 9, 19: 10, 18: 11}
"""Material -> Cityscapes trainId for ``SS/``."""
SSGT4MS_OF = {0: 0, 17: 0, 1: 1, 2: 1, 5: 1, 13: 1, 7: 2, 14: 2, 19: 3, 18: 4}


def visibility() -> list[tuple[str, tuple[str, ...]]]:
    return sc.visibility(SPECS, MODALITY_KINDS)


def _remap(label: np.ndarray, table: dict[int, int]) -> np.ndarray:
    lut = np.full(256, 255, np.uint8)
    for k, v in table.items():
        lut[k] = v
    return lut[label]


def write_sample(out: Path, name: str, size: int, rng: np.random.Generator) -> None:
    h, w = size, LEFT_OFFSET + size
    s = sc.make_scene(SPECS, LAYOUT, h, w, rng, x0=LEFT_OFFSET)
    look = sc.look_for(str(rng.choice(["sun", "sun", "cloud"])))
    exposure, noise = float(rng.uniform(0.6, 1.3)), float(rng.uniform(0.02, 0.04))
    look = sc.Look(**{**look.__dict__, "exposure": exposure, "noise": noise})
    rgb = sc.render_rgb(s, look, rng)
    dolp, aolp = sc.polarisation(s, rng)
    illum = rng.uniform(0.7, 1.0)
    nir = s.nir * illum * 60000.0 + rng.normal(0.0, 800.0, s.nir.shape)
    invalid = np.zeros((h, w), bool)
    invalid[:, : LEFT_OFFSET + int(rng.integers(0, max(2, size // 10)))] = True
    nir = np.where(invalid, 0.0, np.clip(np.round(nir), 0, 65535)).astype(np.uint16)
    write_png(out / "polL_color" / f"{name}.png", rgb)
    write_npy(out / "polL_aolp_sin" / f"{name}.npy", np.sin(aolp).astype(np.float32))
    write_npy(out / "polL_aolp_cos" / f"{name}.npy", np.cos(aolp).astype(np.float32))
    write_npy(out / "polL_dolp" / f"{name}.npy", dolp)
    write_png(out / "NIR_warped" / f"{name}.png", nir)
    write_png(out / "NIR_warped_mask" / f"{name}.png", np.where(invalid, 255, 0).astype(np.uint8))
    write_png(out / "GT" / f"{name}.png", s.label)
    write_png(out / "SS" / f"{name}.png", _remap(s.label, SS_OF))
    write_png(out / "SSGT4MS" / f"{name}.png", _remap(s.label, SSGT4MS_OF))


def write(out: Path, size: int, counts: dict[str, int], seed: int) -> None:
    """Write the whole tree and the list files under ``out``; ``counts`` maps split -> number of samples."""
    lists: dict[str, list[str]] = {}
    for k, (split, n) in enumerate(counts.items()):
        names = []
        for i in range(n):
            scene = f"outscene{_DATES[(i // 5 + k) % len(_DATES)]}_{(7 * k + i // 5) % 9 + 1}"
            name = f"{scene}_{1000000 * (k + 1) + 10 * i:010d}"
            write_sample(out, name, size, np.random.default_rng([seed, 3, k, i]))
            names.append(name)
        lists[split] = names
    for split, names in lists.items():
        write_text(out / "list_folder" / f"{split}.txt", "".join(n + "\n" for n in names))
    write_text(out / "list_folder" / "all.txt", "".join(n + "\n" for n in sorted(sum(lists.values(), []))))
