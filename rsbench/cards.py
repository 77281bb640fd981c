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
import inspect
import json
import math
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
    embed_dim: int | None = 768
    """The decode head's width; null: the model's own default (CMNeXt: 256 for B0/B1, 512 otherwise)."""
    drop_path: float = 0.1
    head_dropout: float = 0.1
    """Dropout before the head's classifier (SegFormer's ``dropout_ratio``)."""
    pretrained: str | None = None
    """Local path of an ImageNet MiT / SegFormer checkpoint (nothing is downloaded)."""
    fill: Literal["drop", "zero"] = "drop"
    """How absent modalities are handled in training: removed from the fusion, or zero-filled (the same
    word and values as protocol cards and records). Checked against the fills the model supports."""
    model_options: dict[str, Any] = field(default_factory=dict)
    """Further options of the model's factory (e.g. ``backbone`` of ``segformer_timm``), checked against its
    signature when the card is read, as loss options are."""
    # losses: each as {weight, option: value}, options checked against the loss's signature
    losses: dict[str, dict[str, Any]] = field(default_factory=lambda: {"ohem_ce": {"weight": 1.0}})
    """``{loss name: {"weight": w, <option>: value}}``; a card may write ``name: w`` for the defaults.
    Resolved on load: every option of the loss is filled in (its default where the card is silent)."""
    modality_dropout: bool = False
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
    eval_resize: Literal["antialias", "bilinear", "float"] = "antialias"
    """How ``eval_size`` resizes (``rsbench.data.transforms.EvalResize``): the released order with torchvision's
    antialias (RobustSeg's pin), without it (CMNeXt's pin), or rsbench's earlier float path."""
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

    @property
    def weights(self) -> dict[str, float]:
        """Each loss term's weight in the total."""
        return {name: float(spec["weight"]) for name, spec in self.losses.items()}

    def loss_options(self, name: str) -> dict[str, Any]:
        """The options of loss ``name`` (everything but its weight)."""
        return {k: v for k, v in self.losses[name].items() if k != "weight"}

    def digest(self) -> str:
        """Short hash of the resolved settings, for provenance and reuse checks.

        Keys added after records were first written are left out while at their default, so a card's
        digest (and the committed records that name it) does not change when the schema grows.
        """
        values = {k: v for k, v in self.to_dict().items() if not (k in LATER_KEYS and v == LATER_KEYS[k])}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


LATER_KEYS: dict[str, Any] = {"model_options": {}, "eval_resize": "antialias"}
"""Card keys added after the first records, with the default that leaves digests as they were."""

MODEL_KEYS = {"embed_dim": "embed_dim", "fill": "fill", "drop_path": "drop_path_rate", "pretrained": "pretrained",
              "head_dropout": "dropout"}
"""Card keys every model may take -> the factory parameter they set (passed only where the factory has it)."""
DATA_INPUTS = frozenset({"modalities", "num_classes"})
"""Factory arguments the dataset supplies, never a card."""


def model_kwargs(card: MethodCard) -> dict[str, Any]:
    """The factory keyword arguments of ``card``'s model: the common keys it takes, then ``model_options``.

    Why checked here and not by the factory: a key the model cannot use (``embed_dim`` on a model without a
    SegFormer head, ``fill: drop`` on CMNeXt, a misspelt option) fails when the card is read, naming the key,
    not after data generation and a first training step.
    """
    from rsbench.models import MODELS
    from rsbench.models.contract import check_fill, factory_capabilities, factory_options

    where = f"card {card.name}"
    factory = MODELS.get(card.model)
    options = factory_options(factory)
    open_ended = not options
    defaults = {f.name: f.default for f in dataclasses.fields(MethodCard)}
    kwargs: dict[str, Any] = {}
    for key, param in MODEL_KEYS.items():
        value = getattr(card, key)
        if param in options or open_ended:
            kwargs[param] = value
        elif value is not None and value != defaults[key]:
            raise ConfigError(f"{where}: model {card.model} takes no {param!r} (card key {key!r}: {value!r})")
    for key, value in card.model_options.items():
        if key in DATA_INPUTS or key in MODEL_KEYS.values():
            raise ConfigError(f"{where}: model_options.{key} is not a card option (it comes from the dataset or a "
                              f"card key of its own: {', '.join(MODEL_KEYS)})")
        if not open_ended and key not in options:
            import difflib

            close = difflib.get_close_matches(key, options, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(k for k in options if k not in DATA_INPUTS and k not in MODEL_KEYS.values())
            raise ConfigError(f"{where}: model {card.model} has no option {key!r}{hint}; options: {allowed or 'none'}")
        kwargs[key] = value
    caps = factory_capabilities(factory)
    check_fill(caps, card.fill, card.model, where)
    return kwargs


def check_model(card: MethodCard) -> MethodCard:
    """The card's model exists, takes the card's options and fill, and has the features its losses need."""
    from rsbench.models import MODELS
    from rsbench.models.contract import check_features, factory_capabilities

    model_kwargs(card)
    needed = []
    for name in card.losses:
        from rsbench.losses import LOSSES

        consumes = getattr(LOSSES.get(name), "consumes", {}) or {}
        if {"features", "teacher_features"} & set(consumes.values()):
            needed.append(name)
    check_features(factory_capabilities(MODELS.get(card.model)), card.model, needed, f"card {card.name}")
    return card


def _check_type(key: str, value: Any, hint: Any) -> Any:
    """Validate (and lightly coerce int -> float) ``value`` against a type hint (``Any``: checked elsewhere)."""
    if hint is Any:
        return value
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

MOVED_INTO_LOSSES = {
    "ohem_thresh": ("ohem_ce", "thresh"),
    "kd_temperature": ("kd", "temperature"),
    "hpdm_pairing": ("hpdm", "pairing"),
    "hpdm_norm": ("hpdm", "norm"),
    "rrm_pairing": ("rrm", "pairing"),
    "rrm_form": ("rrm", "form"),
    "rrm_noise_std": ("rrm", "noise_std"),
    "rrm_axis": ("rrm", "axis"),
    "rrm_lambda": ("rrm", "lam"),
    "rrm_samples": ("rrm", "n_samples"),
}
"""Flat loss keys of earlier cards -> (loss, option): saved cards are converted, user cards are told."""

BUILD_INPUTS = frozenset({"num_classes"})
"""Loss constructor arguments the training step supplies from the dataset, never from a card."""


def _loss_signature(cls: Any) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls).parameters
    return {k: p for k, p in params.items() if k not in BUILD_INPUTS and p.kind is p.POSITIONAL_OR_KEYWORD}


def resolve_losses(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    """Check a card's ``losses`` against each loss's signature; fill in the defaults.

    Why against the signature: a new loss then needs only its module and a card, and a typo in an
    option name or a wrong type fails when the card is read, not after the first training step.
    """
    from rsbench.losses import LOSSES

    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: 'losses' must map loss names to a weight or to {{weight, option: value}}")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in raw.items():
        cls = LOSSES.get(str(name))
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            spec = {"weight": spec}
        if not isinstance(spec, dict) or "weight" not in spec:
            raise ConfigError(f"{where}: card key 'losses.{name}': expected a number (its weight) or a mapping "
                              f"{{weight, option: value}}, got {spec!r}")
        params = _loss_signature(cls)
        hints = typing.get_type_hints(cls.__init__)
        resolved: dict[str, Any] = {"weight": _check_type(f"losses.{name}.weight", spec["weight"], float)}
        resolved.update({k: p.default for k, p in params.items() if p.default is not p.empty})
        for key, value in spec.items():
            if key == "weight":
                continue
            if key not in params:
                import difflib

                close = difflib.get_close_matches(key, params, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{where}: loss {name!r} has no option {key!r}{hint}; options: {', '.join(params)}")
            resolved[key] = _check_type(f"losses.{name}.{key}", value, hints.get(key, type(value)))
        try:  # the loss's own checks (choices, ranges), with a stand-in for what the step supplies
            cls(**{k: v for k, v in resolved.items() if k != "weight"}, **{k: 2 for k in BUILD_INPUTS
                                                                           if k in inspect.signature(cls).parameters})
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: loss {name!r}: {exc}") from None
        out[str(name)] = resolved
    return out


MAX_ITERS = 10**9
MAX_SEED = 2**63 - 1

RANGES: dict[str, tuple[str, Any]] = {
    "iters": ("an integer in 1..1e9", lambda v: 1 <= v <= MAX_ITERS),
    "batch_size": ("an integer in 1..65536", lambda v: 1 <= v <= 65536),
    "lr": ("a finite number > 0", lambda v: math.isfinite(v) and v > 0),
    "weight_decay": ("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0),
    "warmup_iters": ("an integer >= 0", lambda v: v >= 0),
    "warmup_ratio": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
    "poly_power": ("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0),
    "grad_clip": ("null or a finite number > 0", lambda v: v is None or (math.isfinite(v) and v > 0)),
    "crop": ("an integer in 1..16384", lambda v: 1 <= v <= 16384),
    "scale_min": ("a finite number > 0", lambda v: math.isfinite(v) and v > 0),
    "scale_max": ("a finite number > 0", lambda v: math.isfinite(v) and v > 0),
    "eval_size": ("null or an integer in 1..16384", lambda v: v is None or 1 <= v <= 16384),
    "num_workers": ("an integer in 0..256", lambda v: 0 <= v <= 256),
    "val_interval": ("a positive integer", lambda v: v >= 1),
    "ckpt_interval": ("a positive integer", lambda v: v >= 1),
    "seed": (f"an integer in 0..{MAX_SEED}", lambda v: 0 <= v <= MAX_SEED),
    "embed_dim": ("null or an integer in 1..65536", lambda v: v is None or 1 <= v <= 65536),
    "drop_path": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "head_dropout": ("a number in [0, 1)", lambda v: 0 <= v < 1),
}
"""Values a card key can take: checked as each key is read (before any loss or model is imported), so
``iters: 0`` or ``lr: .nan`` fails in one line naming the key instead of after the run has started."""


def _check_range(key: str, value: Any, where: str) -> None:
    rule = RANGES.get(key)
    if rule is not None and not rule[1](value):
        raise ConfigError(f"{where}: card key {key!r} must be {rule[0]}, got {value!r}")


def check_card_values(card: MethodCard) -> MethodCard:
    """What only the resolved card can tell (keys that depend on each other)."""
    if card.scale_max < card.scale_min:
        raise ConfigError(f"card {card.name}: scale_max {card.scale_max} is below scale_min {card.scale_min}")
    return card


def validate_keys(values: dict[str, Any], where: str, schema: type) -> dict[str, Any]:
    """Check ``values`` against a card dataclass: unknown keys (with a close match), wrong types and values out
    of range are errors. Losses are resolved last: their check imports the loss modules (and torch)."""
    fields = {f.name for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    out = {}
    ordered = sorted(values.items(), key=lambda kv: kv[0] == "losses")
    for key, value in ordered:
        if key in RENAMED and RENAMED[key] in fields:
            raise ConfigError(f"{where}: card key {key!r} is now called {RENAMED[key]!r}")
        if key in MOVED_INTO_LOSSES and schema is MethodCard:
            loss, option = MOVED_INTO_LOSSES[key]
            raise ConfigError(f"{where}: card key {key!r} is now an option of its loss: losses: {{{loss}: "
                              f"{{weight: W, {option}: {value}}}}}")
        if key == "losses" and schema is MethodCard:
            out[key] = resolve_losses(value, where)
            continue
        if key not in fields:
            import difflib

            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        out[key] = _check_type(key, value, hints[key])
        if schema is MethodCard:
            _check_range(key, out[key], where)
    return out


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A card file's top-level mapping (``yaml.safe_load``); one-line errors for bad YAML or shape."""
    try:
        data = path.read_bytes()
        if b"\x00" in data[:8192]:
            raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "binary")
        raw = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        kind = "a PNG image" if data.startswith(b"\x89PNG") else "a binary file"
        raise ConfigError(f"{path}: not a card: {kind}, not YAML text") from None
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


def load_card(name_or_path: str, profile: str = "paper", overrides: dict[str, Any] | None = None,
              model_default_width: bool = False) -> MethodCard:
    """Load a card, apply a profile, then CLI overrides (``None`` values are ignored).

    ``model_default_width``: the card's model was overridden, so its ``embed_dim`` (chosen for the card's own
    model) gives way to the new model's default unless the overrides set one.
    """
    path = card_path(name_or_path)
    raw = read_yaml_mapping(path)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a mapping")
    if profile not in profiles:
        raise ConfigError(f"{path.name}: unknown profile {profile!r} (card has: {', '.join(profiles) or 'none'})")
    given = _validate({k: v for k, v in (overrides or {}).items() if v is not None}, "option")  # first: no torch
    values = _validate(raw, path.name)
    values.update(_validate(profiles[profile] or {}, f"{path.name} profile {profile!r}"))
    values.update(given)
    if model_default_width and (overrides or {}).get("embed_dim") is None:
        values["embed_dim"] = None
    values.setdefault("name", path.stem)
    return check_model(check_card_values(MethodCard(**values)))


def card_from_dict(values: dict[str, Any]) -> MethodCard:
    """Rebuild a resolved card saved in a checkpoint or record (older key names are renamed)."""
    values = {RENAMED.get(k, k): v for k, v in values.items()}
    moved = {k: values.pop(k) for k in list(values) if k in MOVED_INTO_LOSSES}
    losses = values.get("losses")
    if moved and isinstance(losses, dict):  # an earlier flat card: fold the options into their losses
        losses = {n: dict(s) if isinstance(s, dict) else {"weight": s} for n, s in losses.items()}
        for key, value in moved.items():
            loss, option = MOVED_INTO_LOSSES[key]
            if loss in losses:
                losses[loss].setdefault(option, value)
        values["losses"] = losses
    return MethodCard(**_validate(values, "saved card"))
