"""Load local checkpoints in the official MiT / SegFormer layouts, strictly.

Accepted layouts (detected from the keys, after unwrapping ``state_dict``/``model`` and a
DDP ``module.`` prefix):
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
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from rsbench.errors import ConfigError
from rsbench.models.segmentor import MultiModalSegmentor

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
        obj: object = load_file(str(p), device="cpu")
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


def _split(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor], bool]:
    """Checkpoint -> (encoder keys in official form, head keys, keys of no known section, has_head_section)."""
    enc: dict[str, Tensor] = {}
    head: dict[str, Tensor] = {}
    other: dict[str, Tensor] = {}
    if any(k.startswith("backbone.") for k in state):
        sections = {"backbone.": enc, "decode_head.": head}
        dropped = ("decode_head.conv_seg.", "auxiliary_head.")
    elif any(k.startswith("encoder.") for k in state) and any(k.startswith("decoder.") for k in state):
        sections = {"encoder.": enc, "decoder.": head}  # released RobustSeg Seg
        dropped = ("classifier.",)
    elif any(k.startswith("encoder.") for k in state):
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


def load_pretrained(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    allow_missing_head: bool = False,
    ignore: Sequence[str] = (),
) -> list[str]:
    """Load a local checkpoint into a segmentor or a bare encoder, strictly.

    Args:
        model: a :class:`MultiModalSegmentor` or an encoder (MiT, TimmEncoder). An encoder
            takes the encoder part of a full segmentor checkpoint.
        path: local file (see the module docstring for the accepted layouts).
        allow_missing_head: a checkpoint with no decode head at all (an encoder-only
            ImageNet checkpoint) leaves the segmentor's head at its random init.
        ignore: glob patterns of the model's own keys (e.g. ``"head.linear_pred.*"`` for
            another class count) left at init; the checkpoint's values for them are dropped.

    Returns:
        The model keys left at init (sorted; empty for a full load).

    Raises:
        ConfigError: missing/unexpected keys or shape mismatches, listed by name.
    """
    state = read_state_dict(path)
    enc_state, head_state, other, has_head = _split(state)
    is_seg = isinstance(model, MultiModalSegmentor)
    encoder = model.encoder if is_seg else model
    unused = getattr(encoder, "unused_checkpoint_keys", None)
    drop = unused(enc_state.keys()) if unused is not None else set()
    prefix = ("encoder." if is_seg else "") + _encoder_prefix(encoder)
    mapped = {prefix + k: v for k, v in enc_state.items() if k not in drop}
    mapped.update(other)  # reported as unexpected below
    if is_seg:
        mapped.update({"head." + k: v for k, v in head_state.items()})
    own = model.state_dict()
    skip = {k for k in own if any(fnmatch.fnmatchcase(k, pat) for pat in ignore)}
    if is_seg and allow_missing_head and not head_state:
        skip |= {k for k in own if k.startswith("head.")}
    mapped = {k: v for k, v in mapped.items() if k not in skip}
    missing = [k for k in own if k not in mapped and k not in skip]
    unexpected = [k for k in mapped if k not in own]
    shapes = [
        f"{k} {list(v.shape)} vs model {list(own[k].shape)}"
        for k, v in mapped.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"checkpoint {path} does not fit {type(model).__name__}"]
        if missing:
            parts.append(f"{len(missing)} missing keys: {_names(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_names(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {_names(shapes)}")
        if is_seg and missing and all(k.startswith("head.") for k in missing) and not has_head:
            parts.append("(an encoder-only checkpoint: pass allow_missing_head=True to keep a random head)")
        raise ConfigError("; ".join(parts))
    result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    return sorted(result.missing_keys)


def to_official_state_dict(model: nn.Module, layout: str = "auto") -> dict[str, Tensor]:
    """The model's weights under official key names (inverse of ``load_pretrained``).

    ``layout``: ``"mmseg"`` (``backbone.*`` + ``decode_head.*``, the default for a segmentor)
    or ``"mit"`` (plain encoder keys, the default for an encoder; a segmentor's head is left out).
    """
    is_seg = isinstance(model, MultiModalSegmentor)
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
