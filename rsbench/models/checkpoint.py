"""Load local checkpoints in the released layouts of the field, strictly.

A file's layout is recognised by signature keys (``LAYOUTS``, after unwrapping ``state_dict``/``model``
and a DDP ``module.`` prefix), and the model maps it to its own keys. Layouts:
- CMNeXt (``jamycheung/DELIVER``): ``backbone.*`` + ``decode_head.*`` with the auxiliary branch's
  ``backbone.extra_downsample_layers.*`` / ``backbone.FRMs.*``; read by the ``cmnext_mit_*`` models only
  (the key names are the model's own). Its RGB-only files are plain SegFormers (the mmseg layout);
- plain encoder keys, e.g. MiT ImageNet ``block1.0.attn.q.weight`` (the classifier
  ``head.weight``/``head.bias`` is dropped) or a timm model's own keys;
- mmseg SegFormer: ``backbone.*`` + ``decode_head.*`` (unused ``decode_head.conv_seg`` and
  ``auxiliary_head`` dropped);
- rsbench's own ``state_dict()``: ``encoder.*`` + ``head.*``;
- the released RobustSeg ``Seg`` model's ``state_dict()`` (as its training scripts save it, with or
  without the DDP ``module.`` prefix): ``encoder.*`` + ``decoder.*``, plus an unused CAM
  ``classifier.weight`` that is dropped (``semseg/models/segformer/seg_block_select_UMD.py``).

Anything else that does not match, a missing key, an unexpected key or a shape
mismatch, raises :class:`~rsbench.errors.ConfigError` naming the keys. Nothing is
loaded partially unless asked for (``allow_missing_head``, ``ignore``).
"""

from __future__ import annotations

import fnmatch
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rsbench.errors import ConfigError
from rsbench.models.contract import model_label

_SHOW = 8


def torch_load_weights_only(path: Path, what: str = "torch checkpoint") -> object:
    """``torch.load(path, weights_only=True)`` on CPU; every failure is one short :class:`ConfigError` line.

    Why not torch's own message: it spans a dozen lines and suggests ``weights_only=False``, which would run
    the code a malicious pickle carries. A file that needs anything beyond tensors and plain containers is
    refused by name (the global it asks for), a truncated or corrupt file is called unreadable.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, EOF, pickle and storage errors: a file we will not use
        text = str(exc)
        if isinstance(exc, pickle.UnpicklingError) and ("Unsupported global" in text or "reduce" in text):
            found = re.search(r"GLOBAL (\S+)", text)
            asks = f" (it asks for {found.group(1)})" if found else ""
            raise ConfigError(
                f"{path}: refused to load: it holds Python objects other than tensors{asks}, which could run "
                "code; rsbench reads checkpoints weights-only"
            ) from None
        raise ConfigError(f"{path}: not a readable {what} for weights-only loading, truncated or corrupt "
                          f"({type(exc).__name__})") from None


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a LOCAL ``.pth``/``.pt``/``.bin`` (weights-only torch.load) or ``.safetensors`` file."""
    if "://" in str(path):
        raise ConfigError(f"checkpoints are read from local files only (no network), got {path}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"checkpoint file not found: {p}")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError(f"{p} is a .safetensors file; install the 'safetensors' package") from None
        try:
            obj: object = load_file(str(p), device="cpu")
        except Exception as exc:  # noqa: BLE001 - safetensors' own errors: a header or buffer that does not parse
            raise ConfigError(f"{p}: not a readable .safetensors file ({' '.join(str(exc).split())[:120]})") from None
    else:
        obj = torch_load_weights_only(p)
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise ConfigError(f"{p} holds no state dict")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise ConfigError(f"{p}: entries are not tensors: {_names(bad)}")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


@dataclass(frozen=True)
class Layout:
    """A released key layout, recognised by its signature keys (not by a prefix alone)."""

    name: str
    description: str
    signature: Callable[[set[str]], bool]


def _has(keys: set[str], *prefixes: str) -> bool:
    return any(k.startswith(prefixes) for k in keys)


LAYOUTS: tuple[Layout, ...] = (
    Layout("cmnext", "CMNeXt (jamycheung/DELIVER): backbone.* with the auxiliary branch (extra_downsample_layers, "
           "FRMs) + decode_head.*",
           lambda k: _has(k, "backbone.extra_downsample_layers.", "backbone.FRMs.")),
    Layout("mmseg", "SegFormer as mmseg / the CMNeXt codebase save it (RGB only): backbone.* + decode_head.*",
           lambda k: _has(k, "backbone.") and _has(k, "decode_head.")),
    Layout("robustseg", "the released RobustSeg Seg model: encoder.* + decoder.*",
           lambda k: _has(k, "encoder.") and _has(k, "decoder.")),
    Layout("rsbench", "rsbench's shared-encoder segmentor: encoder.* + head.*",
           lambda k: _has(k, "encoder.") and _has(k, "head.")),
    Layout("encoder", "an encoder alone (MiT ImageNet keys block1.*, patch_embed1.*, or a timm model's keys)",
           lambda k: True),
)
"""Tried in order; the first whose signature matches names the file's layout."""


def detect_layout(state: Mapping[str, Tensor]) -> Layout:
    keys = set(state)
    return next(layout for layout in LAYOUTS if layout.signature(keys))


_AUX_NORM = re.compile(r"backbone\.extra_downsample_layers\.0\.norm\.ln_\d+\.weight")


def checkpoint_modalities(state: Mapping[str, Tensor]) -> int | None:
    """How many modalities a checkpoint's weights were built for, where the keys say it (CMNeXt: one per
    auxiliary LayerNorm plus RGB; an RGB-only CMNeXt/SegFormer file: 1); None for shared-encoder layouts."""
    layout = detect_layout(state).name
    if layout == "cmnext":
        return 1 + sum(1 for k in state if _AUX_NORM.fullmatch(k))
    return None


def checkpoint_head_width(state: Mapping[str, Tensor]) -> int | None:
    """The SegFormer head's embedding width E from the fuse conv ``[E, 4E, 1, 1]``, when the file has a head."""
    for key in ("decode_head.linear_fuse.conv.weight", "head.linear_fuse.conv.weight",
                "decoder.linear_fuse.conv.weight"):
        if key in state and state[key].dim() == 4:
            return int(state[key].shape[0])
    return None


def checkpoint_classes(state: Mapping[str, Tensor]) -> int | None:
    for key in ("decode_head.linear_pred.weight", "head.linear_pred.weight", "decoder.linear_pred.weight"):
        if key in state:
            return int(state[key].shape[0])
    return None


def _split(state: Mapping[str, Tensor], layout: str
           ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor], bool]:
    """A shared-encoder checkpoint -> (encoder keys in official form, head keys, keys of no known section, has_head)."""
    sections: dict[str, dict[str, Tensor]]
    enc: dict[str, Tensor] = {}
    head: dict[str, Tensor] = {}
    other: dict[str, Tensor] = {}
    if layout == "mmseg":
        sections = {"backbone.": enc, "decode_head.": head}
        dropped: tuple[str, ...] = ("decode_head.conv_seg.", "auxiliary_head.")
    elif layout == "robustseg":
        sections = {"encoder.": enc, "decoder.": head}
        dropped = ("classifier.",)
    elif layout == "rsbench":
        sections = {"encoder.": enc, "head.": head}
        dropped = ()
    else:
        return dict(state), head, other, False
    for k, v in state.items():
        if k.startswith(dropped):
            continue
        sec = next((s for s in sections if k.startswith(s)), None)
        if sec is None:
            other[k] = v
        else:
            sections[sec][k[len(sec) :]] = v
    return enc, head, other, True


def _encoder_prefix(encoder: nn.Module) -> str:
    return getattr(encoder, "checkpoint_prefix", "")


def map_shared_encoder(model: nn.Module, state: Mapping[str, Tensor], layout: Layout,
                       allow_missing_head: bool) -> tuple[dict[str, Tensor], set[str]]:
    """A checkpoint in one of the shared-encoder layouts -> (``model``'s own keys, keys left at init).

    ``model`` is a segmentor with ``encoder`` and ``head`` (``MultiModalSegmentor``) or a bare encoder.
    """
    if layout.name == "cmnext":
        raise ConfigError(f"this is a {layout.description} checkpoint; score it with a cmnext_mit_* model "
                          "(e.g. --model cmnext_mit_b2)")
    enc_state, head_state, other, _ = _split(state, layout.name)
    has_head = hasattr(model, "head") and hasattr(model, "encoder")
    encoder = model.encoder if has_head else model
    unused = getattr(encoder, "unused_checkpoint_keys", None)
    drop = unused(enc_state.keys()) if unused is not None else set()
    prefix = ("encoder." if has_head else "") + _encoder_prefix(encoder)
    mapped = {prefix + k: v for k, v in enc_state.items() if k not in drop}
    mapped.update(other)  # reported as unexpected
    skip: set[str] = set()
    if has_head:
        mapped.update({"head." + k: v for k, v in head_state.items()})
        if allow_missing_head and not head_state:
            skip = {k for k in model.state_dict() if k.startswith("head.")}
    return mapped, skip


def load_pretrained(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    allow_missing_head: bool = False,
    ignore: Sequence[str] = (),
) -> list[str]:
    """Load a local checkpoint into a model or a bare encoder, strictly.

    The file's layout is recognised by its signature keys (``detect_layout``); the model maps it to its
    own keys (``model.map_checkpoint(state, layout, allow_missing_head)``, or the shared-encoder mapping
    for rsbench's segmentor and bare encoders).

    Args:
        model: a segmentor (``MultiModalSegmentor``, ``CMNeXt``, ...) or an encoder (MiT, TimmEncoder).
        path: local file (see the module docstring for the accepted layouts).
        allow_missing_head: a checkpoint with no decode head (an encoder-only ImageNet checkpoint) leaves
            the head (and, for CMNeXt, the auxiliary branch) at its random init.
        ignore: glob patterns of the model's own keys (e.g. ``"head.linear_pred.*"`` for
            another class count) left at init; the checkpoint's values for them are dropped.

    Returns:
        The model keys left at init (sorted; empty for a full load).

    Raises:
        ConfigError: missing/unexpected keys or shape mismatches, listed by name.
    """
    state = read_state_dict(path)
    layout = detect_layout(state)
    mapper = getattr(model, "map_checkpoint", None)
    if mapper is not None:
        mapped, skip = mapper(state, layout, allow_missing_head)
    else:
        mapped, skip = map_shared_encoder(model, state, layout, allow_missing_head)
    own = model.state_dict()
    skip |= {k for k in own if any(fnmatch.fnmatchcase(k, pat) for pat in ignore)}
    mapped = {k: v for k, v in mapped.items() if k not in skip}
    missing = [k for k in own if k not in mapped and k not in skip]
    unexpected = [k for k in mapped if k not in own]
    shapes = [
        f"{k} {list(v.shape)} vs model {list(own[k].shape)}"
        for k, v in mapped.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"checkpoint {path} ({layout.name} layout) does not fit {model_label(model)}"]
        if missing:
            parts.append(f"{len(missing)} missing keys: {_names(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_names(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {_names(shapes)}")
        head_keys = ("head.", "decode_head.")
        if missing and all(k.startswith(head_keys) for k in missing) and layout.name == "encoder":
            parts.append("(an encoder-only checkpoint: pass allow_missing_head=True to keep a random head)")
        raise ConfigError("; ".join(parts))
    result = model.load_state_dict(mapped, strict=False)  # every key checked above; skipped ones stay at init
    assert not result.unexpected_keys, result.unexpected_keys
    assert set(result.missing_keys) <= skip, (result.missing_keys, skip)
    return sorted(result.missing_keys)


def to_official_state_dict(model: nn.Module, layout: str = "auto") -> dict[str, Tensor]:
    """The model's weights under official key names (inverse of ``load_pretrained``).

    ``layout``: ``"mmseg"`` (``backbone.*`` + ``decode_head.*``, the default for a segmentor)
    or ``"mit"`` (plain encoder keys, the default for an encoder; a segmentor's head is left out).
    """
    is_seg = hasattr(model, "encoder") and hasattr(model, "head")
    if layout == "auto":
        layout = "mmseg" if is_seg else "mit"
    if layout not in ("mmseg", "mit"):
        raise ConfigError(f"layout must be 'mmseg', 'mit' or 'auto', got {layout!r}")
    encoder = model.encoder if is_seg else model
    prefix = _encoder_prefix(encoder)
    out = {}
    for k, v in encoder.state_dict().items():
        if k.startswith(prefix):
            k = k[len(prefix) :]
        out[("backbone." if layout == "mmseg" else "") + k] = v.detach().clone()
    if is_seg and layout == "mmseg":
        out.update({"decode_head." + k: v.detach().clone() for k, v in model.head.state_dict().items()})
    return out


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")
