"""MCubeS loader (Liang et al., "Multimodal Material Segmentation", CVPR 2022): 20 material classes.

Reads the official ``multimodal_dataset/`` folder as released (DATASETS.md section 3)::

    <root>/polL_color/{name}.png       RGB, uint8 (uint16 accepted)       -> "rgb"
    <root>/polL_aolp_sin/{name}.npy    float32 [H, W], sin of AoLP        -> "aolp" (with the cos file)
    <root>/polL_aolp_cos/{name}.npy    float32 [H, W], cos of AoLP
    <root>/polL_dolp/{name}.npy        float32 [H, W], DoLP               -> "dolp"
    <root>/NIR_warped/{name}.png       1 channel, uint16 (uint8 accepted) -> "nir"
    <root>/NIR_warped_mask/{name}.png  white = invalid NIR                (read, see ``nir_mask_ignore``)
    <root>/GT/{name}.png               uint8 material id 0..19, 255 = ignore
    <root>/SS/{name}.png               semantic labels                    (required, not returned)
    <root>/list_folder/{train,val,test}.txt

Conversions (as CMNeXt/RobustSeg ``MCubeS``, the published loaders):

- rgb: ``/255`` (``/65535`` if uint16), then ImageNet mean/std -> float32 ``[3, H, W]``.
- aolp: channels ``[sin, cos, sin]`` of the two ``.npy`` files, raw values.
- dolp: channels ``[d, d, d]``, raw values.
- nir: ``/65535`` (``/255`` if 8-bit), repeated to 3 channels, no mean/std.
- label: GT used directly as the class id (0..19), 255 = ignore.
- every modality and the label keep columns ``[:, left_offset:]`` (published 192: 1024x1224 -> 1024x1032).

Validation beyond the published code (one-line :class:`DataError` naming the file): every file
must have GT's H x W (read from the PNG header), ``.npy`` files must hold a 2-D float array and
are read without pickle, NIR and GT must be single-channel, polL_color 3 (or 4) channels.

Index: ``list_folder/{split}.txt``, the first whitespace token of each non-empty line, in the
file's order (the published order); a repeated name is kept once. The sample id is that name
(unique within a list); ``meta["scene"]`` is the name without its frame number
(``outscene1208_2_0000000150`` -> ``outscene1208_2``). Names are joined to the root as plain
file stems, never searched for as substrings of the absolute path, so any root path works.
``root`` may also be the folder that contains ``multimodal_dataset/``.

Differences from the published loaders, each behind an option:

- ``val_from_test_list``: CMNeXt/RobustSeg read ``test.txt`` for split ``val``; rsbench reads
  ``val.txt`` unless this is set (to reproduce paper numbers, which are on the test list).
- ``nir_mask_ignore``: the official MCubeSNet loss ignores pixels where ``NIR_warped_mask > 0``;
  CMNeXt does not. When set, those label pixels become 255.
- Published code reads ``SS/`` and ``NIR_warped_mask/`` for every sample, so both are required
  here too (``check()`` reports them as missing); SS is not returned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from rsbench.data.base import (
    IGNORE_INDEX,
    DatasetInfo,
    Sample,
    SampleRef,
    SegmentationDataset,
    normalize_rgb_chw,
    scale_to_three,
)
from rsbench.errors import ConfigError, DataError
from rsbench.io import png_size, read_npy, read_png

# fmt: off
_CLASSES = (
    "asphalt", "concrete", "metal", "road_marking", "fabric", "glass", "plaster", "plastic", "rubber", "sand",
    "gravel", "ceramic", "cobblestone", "brick", "grass", "wood", "leaf", "water", "human", "sky",
)
"""Material classes in id order (GT value = index)."""
_PALETTE = (
    (44, 160, 44), (31, 119, 180), (255, 127, 14), (214, 39, 40), (140, 86, 75),
    (127, 127, 127), (188, 189, 34), (255, 152, 150), (23, 190, 207), (174, 199, 232),
    (196, 156, 148), (197, 176, 213), (247, 182, 210), (199, 199, 199), (219, 219, 141),
    (158, 218, 229), (57, 59, 121), (107, 110, 207), (156, 158, 222), (99, 121, 57),
)
"""Published colours per class (CMNeXt ``MCubeS.PALETTE``, the official ``get_my_labels``)."""
# fmt: on

_FOLDERS = {
    "rgb": ("polL_color", ".png"),
    "aolp": ("polL_aolp_sin", ".npy"),
    "aolp_cos": ("polL_aolp_cos", ".npy"),
    "dolp": ("polL_dolp", ".npy"),
    "nir": ("NIR_warped", ".png"),
    "label": ("GT", ".png"),
    "nir_mask": ("NIR_warped_mask", ".png"),
    "ss": ("SS", ".png"),
}
"""``SampleRef.files`` key -> (folder, suffix). ``aolp`` is the sin file; ``aolp_cos`` its partner."""

_PARTNERS = {"aolp": ("aolp", "aolp_cos")}
_ALWAYS = ("label", "nir_mask", "ss")
"""Files the published loader reads for every sample, whatever the modalities."""


class McubesDataset(SegmentationDataset):
    """MCubeS in its released layout; samples are ``[3, H, W - left_offset]`` float32 per modality."""

    info: ClassVar[DatasetInfo] = DatasetInfo(
        name="mcubes",
        modalities=("rgb", "aolp", "dolp", "nir"),
        classes=_CLASSES,
        splits=("train", "val", "test"),
        conditions={},
        source="https://github.com/kyotovision-public/multimodal-material-segmentation (multimodal_dataset.zip)",
        layout=(
            "multimodal_dataset/{polL_color,polL_aolp_sin,polL_aolp_cos,polL_dolp,NIR_warped,NIR_warped_mask,GT,SS}"
            "/{name}.{png,npy} + list_folder/{train,val,test}.txt"
        ),
        palette=_PALETTE,
    )

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] | None = None,
        conditions: Sequence[str] | None = None,
        transform: Callable[[Sample], Sample] | None = None,
        *,
        left_offset: int = 192,
        val_from_test_list: bool = False,
        nir_mask_ignore: bool = False,
    ) -> None:
        """See the module docstring for the options; ``left_offset`` is the number of left columns dropped."""
        if isinstance(left_offset, bool) or not isinstance(left_offset, int) or left_offset < 0:
            raise ConfigError(f"mcubes: left_offset must be an integer >= 0, got {left_offset!r}")
        self.left_offset = left_offset
        self.val_from_test_list = bool(val_from_test_list)
        self.nir_mask_ignore = bool(nir_mask_ignore)
        root = Path(root).expanduser()
        if not (root / "list_folder").is_dir() and (root / "multimodal_dataset" / "list_folder").is_dir():
            root = root / "multimodal_dataset"
        super().__init__(root, split=split, modalities=modalities, conditions=conditions, transform=transform)

    # ----------------------------------------------------------------- index
    def list_file(self) -> Path:
        """The list this split reads (``test.txt`` for ``val`` when ``val_from_test_list``)."""
        name = "test" if self.split == "val" and self.val_from_test_list else self.split
        return self.root / "list_folder" / f"{name}.txt"

    def _index(self) -> list[SampleRef]:
        path = self.list_file()
        if not path.parent.is_dir():
            raise DataError(self.missing_root_message(self.root))
        if not path.is_file():
            raise DataError(f"mcubes: missing split list {path} ({self.info.layout})")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"mcubes: unreadable split list {path} ({exc})") from None
        keys = [m for name in self.modalities for m in _PARTNERS.get(name, (name,))] + list(_ALWAYS)
        refs: list[SampleRef] = []
        seen: set[str] = set()
        for lineno, line in enumerate(lines, 1):
            tokens = line.split()
            if not tokens:
                continue
            name = tokens[0]
            if name in (".", "..") or "/" in name or "\\" in name:
                raise DataError(f"mcubes: {path}:{lineno}: {name!r} is not a plain sample name")
            if name in seen:
                continue
            seen.add(name)
            files = {k: self.root / _FOLDERS[k][0] / f"{name}{_FOLDERS[k][1]}" for k in keys}
            refs.append(SampleRef(id=name, files=files, meta={"scene": name.rsplit("_", 1)[0]}))
        return refs

    # ----------------------------------------------------------------- loading
    def _crop(self, arr: np.ndarray, path: Path) -> np.ndarray:
        """Drop the first ``left_offset`` columns of ``[H, W, ...]`` (published ``_left_offset``)."""
        if arr.shape[1] <= self.left_offset:
            raise DataError(f"{path}: width {arr.shape[1]} is not larger than left_offset {self.left_offset}")
        return arr[:, self.left_offset :]

    def _expected_size(self, ref: SampleRef) -> tuple[int, int]:
        return png_size(ref.files["label"])

    def _read_plane(self, ref: SampleRef, key: str) -> np.ndarray:
        """A ``.npy`` modality plane as float32 ``[H, W]`` (2-D float, GT-sized), uncropped."""
        path = ref.files[key]
        arr = read_npy(path)
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
            raise DataError(f"{path}: expected a 2-D float array, got {arr.dtype} with shape {arr.shape}")
        if arr.shape != self._expected_size(ref):
            raise DataError(f"{path}: shape {arr.shape} differs from the label's {self._expected_size(ref)}")
        return arr.astype(np.float32, copy=False)

    def _read_image(self, ref: SampleRef, key: str, channels: int) -> np.ndarray:
        """A GT-sized PNG: ``channels`` 1 -> ``[H, W]``; 3 -> ``[H, W, 3]`` (alpha dropped); 0 -> either."""
        path = ref.files[key]
        img = read_png(path)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        one, three = img.ndim == 2, img.ndim == 3 and img.shape[2] in (3, 4)
        if not (one if channels == 1 else three if channels == 3 else one or three):
            shape = "[H, W]" if channels == 1 else "[H, W, 3]"
            raise DataError(f"{path}: expected a {shape} image, got shape {img.shape}")
        if key != "label" and img.shape[:2] != self._expected_size(ref):
            raise DataError(f"{path}: size {img.shape[:2]} differs from the label's {self._expected_size(ref)}")
        return img[:, :, :3] if img.ndim == 3 else img

    def _read_modality(self, ref: SampleRef, name: str) -> np.ndarray:
        """Cropped, as stored: rgb [3, H, W] and nir [1, H, W] integer; aolp [3, H, W] and dolp [1, H, W] float."""
        if name == "rgb":
            img = self._crop(self._read_image(ref, "rgb", 3), ref.files["rgb"])
            out = img.transpose(2, 0, 1)
        elif name == "aolp":
            sin = self._crop(self._read_plane(ref, "aolp"), ref.files["aolp"])
            cos = self._crop(self._read_plane(ref, "aolp_cos"), ref.files["aolp_cos"])
            out = np.stack([sin, cos, sin])
        elif name == "dolp":
            out = self._crop(self._read_plane(ref, "dolp"), ref.files["dolp"])[None]
        elif name == "nir":
            out = self._crop(self._read_image(ref, "nir", 1), ref.files["nir"])[None]
        else:  # the base validates names against info.modalities
            raise ConfigError(f"mcubes: unknown modality {name!r}")
        return np.ascontiguousarray(out)

    def _convert_modality(self, name: str, raw: np.ndarray) -> np.ndarray:
        if name in ("rgb", "nir"):
            scale = 65535.0 if raw.dtype == np.uint16 else 255.0
            return normalize_rgb_chw(raw, scale) if name == "rgb" else scale_to_three(raw, scale)
        out = np.repeat(raw, 3, axis=0) if raw.shape[0] == 1 else raw  # dolp [d, d, d]; aolp as read
        return np.ascontiguousarray(out, dtype=np.float32)

    def _load_label(self, ref: SampleRef) -> np.ndarray:
        for path in ref.files.values():  # the published loader reads SS and the NIR mask too
            if not path.is_file():
                raise DataError(f"{ref.id}: missing file {path}")
        label = self._crop(self._read_image(ref, "label", 1), ref.files["label"]).astype(np.int64)
        if self.nir_mask_ignore:
            mask = self._read_image(ref, "nir_mask", 0)
            if mask.ndim == 3:  # a colour mask: invalid where any channel is set (published reads it as grey)
                mask = mask.max(axis=2)
            label[self._crop(mask, ref.files["nir_mask"]) > 0] = IGNORE_INDEX
        return label
