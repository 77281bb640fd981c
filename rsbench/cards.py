"""Method cards: flat YAML files parsed into frozen, typed settings.

A card names registered components and their settings; the code lives in rsbench.
Precedence is card < profile < CLI options, with no inheritance between cards: a card
is its top-level keys plus ``profiles: {name: {key: value}}`` overriding them. Unknown
keys and wrong types are rejected with the key's name, so a typo never goes unnoticed.
The resolved card (a plain dict) is saved with every checkpoint and record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from rsbench.errors import ConfigError

PROFILES = ("paper", "quick")


@dataclass(frozen=True)
class MethodCard:
    """Everything one training stage needs, resolved for one profile."""

    name: str
    description: str = ""
    stage: Literal["teacher", "student"] = "teacher"
    teacher: str | None = None
    """Student cards: the card that trains the teacher."""
    # model
    model: str = "segformer_mit_b0"
    embed_dim: int = 768
    drop_path: float = 0.1
    pretrained: str | None = None
    """Local path of an ImageNet MiT / SegFormer checkpoint (nothing is downloaded)."""
    fill: Literal["drop", "zero"] = "drop"
    """How absent modalities are handled in training: removed from the fusion, or zero-filled (the same
    word and values as protocol cards and records)."""
    # losses and their weights
    losses: dict[str, float] = field(default_factory=lambda: {"ohem_ce": 1.0})
    modality_dropout: bool = False
    ohem_thresh: float = 0.7
    kd_temperature: float = 1.0
    hpdm_pairing: Literal["same", "shuffle", "random", "random_each"] = "same"
    """Teacher -> student modality pairing of HPDM (``rsbench.losses._pairing``)."""
    hpdm_norm: Literal["mean", "count_squared"] = "count_squared"
    rrm_pairing: Literal["same", "shuffle", "random", "random_each"] = "same"
    """Pairing of RRM; when equal to ``hpdm_pairing`` both losses share one draw per step."""
    rrm_form: Literal["released", "logit_grad"] = "released"
    """``released``: the released RRM computation; ``logit_grad``: the earlier reading (rsbench.losses.rrm)."""
    rrm_noise_std: Literal["pixel", "map"] = "pixel"
    rrm_axis: Literal["channel", "height"] = "height"
    rrm_lambda: float = 1e-5
    rrm_samples: int = 10
    # optimisation
    lr: float = 6e-5
    weight_decay: float = 0.01
    warmup_iters: int = 0
    warmup_ratio: float = 0.1
    poly_power: float = 0.9
    grad_clip: float | None = None
    amp: bool = True
    """Mixed precision on CUDA (ignored on CPU)."""
    batch_size: int = 2
    iters: int = 1000
    # data
    crop: int = 1024
    scale_min: float = 0.5
    scale_max: float = 2.0
    eval_size: int | None = None
    """Short side for evaluation (None: native size)."""
    num_workers: int = 0
    cache_data: bool = False
    """Keep decoded training samples in memory (small generated sets; not for real datasets)."""
    synth: dict[str, int] = field(default_factory=dict)
    """Generator settings when training on a ``-synth`` dataset."""
    # bookkeeping
    val_interval: int = 200
    ckpt_interval: int = 200
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short hash of the resolved settings, for provenance and reuse checks."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _check_type(key: str, value: Any, hint: Any) -> Any:
    """Validate (and lightly coerce int -> float) ``value`` against a type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(hint):
            try:
                return _check_type(key, value, arm)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"card key {key!r}: {value!r} is not {_describe(hint)}")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"card key {key!r}: expected null")
    if origin is Literal:
        if value in typing.get_args(hint):
            return value
        raise ConfigError(f"card key {key!r}: {value!r} is not one of {', '.join(map(str, typing.get_args(hint)))}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"card key {key!r}: expected a list, got {type(value).__name__}")
        (it,) = typing.get_args(hint)
        return [_check_type(f"{key}[{i}]", v, it) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"card key {key!r}: expected a mapping, got {type(value).__name__}")
        _, vt = typing.get_args(hint)
        return {str(k): _check_type(f"{key}.{k}", v, vt) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"card key {key!r}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"card key {key!r}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"card key {key!r}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"card key {key!r}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported card type {hint}")


def _describe(hint: Any) -> str:
    return " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(hint))


RENAMED = {"missing": "fill"}
"""Card keys renamed since checkpoints were first written: old saved cards are read, user cards are told."""


def validate_keys(values: dict[str, Any], where: str, schema: type) -> dict[str, Any]:
    """Check ``values`` against a card dataclass: unknown keys (with a close match) and wrong types are errors."""
    fields = {f.name for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    out = {}
    for key, value in values.items():
        if key in RENAMED and RENAMED[key] in fields:
            raise ConfigError(f"{where}: card key {key!r} is now called {RENAMED[key]!r}")
        if key not in fields:
            import difflib

            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        out[key] = _check_type(key, value, hints[key])
    return out


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A card file's top-level mapping (``yaml.safe_load``); one-line errors for bad YAML or shape."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read card {path}: {exc.strerror}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a card must be a mapping of keys to values")
    return raw


def _validate(values: dict[str, Any], where: str) -> dict[str, Any]:
    return validate_keys(values, where, MethodCard)


def builtin_cards() -> list[str]:
    """Names of the method cards shipped with rsbench."""
    folder = resources.files("rsbench.cards_methods")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def card_path(name_or_path: str) -> Path:
    """A shipped card by name, or a user's card by path (``.yaml``/``.yml``)."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"card file not found: {path}")
        return path
    path = Path(str(resources.files("rsbench.cards_methods") / f"{name_or_path}.yaml"))
    if not path.is_file():
        import difflib

        known = builtin_cards()
        close = difflib.get_close_matches(name_or_path, known, n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown method {name_or_path!r}{hint} (known: {', '.join(known)})")
    return path


def load_card(name_or_path: str, profile: str = "paper", overrides: dict[str, Any] | None = None) -> MethodCard:
    """Load a card, apply a profile, then CLI overrides (``None`` values are ignored)."""
    path = card_path(name_or_path)
    raw = read_yaml_mapping(path)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a mapping")
    if profile not in profiles:
        raise ConfigError(f"{path.name}: unknown profile {profile!r} (card has: {', '.join(profiles) or 'none'})")
    values = _validate(raw, path.name)
    values.update(_validate(profiles[profile] or {}, f"{path.name} profile {profile!r}"))
    values.update(_validate({k: v for k, v in (overrides or {}).items() if v is not None}, "option"))
    values.setdefault("name", path.stem)
    return MethodCard(**values)


def card_from_dict(values: dict[str, Any]) -> MethodCard:
    """Rebuild a resolved card saved in a checkpoint or record (older key names are renamed)."""
    values = {RENAMED.get(k, k): v for k, v in values.items()}
    return MethodCard(**_validate(values, "saved card"))
