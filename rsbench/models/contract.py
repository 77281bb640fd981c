"""The model contract: what a model declares, and the questions the rest of rsbench asks it.

Every model is ``forward(modalities, present, fill=None) -> logits`` (or several outputs, see
``outputs``) plus a ``capabilities`` attribute. The protocol engine, the training step, the card
reader and the weight loader ask these questions (``capabilities_of``, ``check_fill``, ...), never a
model's type, so a new architecture touches its own module and one registry line.

A model that declares nothing (any ``nn.Module`` given to ``rsbench.evaluate``) gets
``UNDECLARED``: it is called as ``model(modalities, present)``, with absent inputs zero-filled or
left out as the protocol's fill says, one forward per condition.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rsbench.errors import ConfigError

FILLS: tuple[str, ...] = ("drop", "zero")
Present = Tensor | Sequence[str] | None
"""Which modalities a forward gets: a bool [B, M] mask, names (the same subset for every sample), or None (all)."""


@dataclass(frozen=True)
class Capabilities:
    """What a model offers beyond ``forward``.

    Attributes:
        fills: absent-input handling it supports. ``drop`` needs a fusion that can skip a modality;
            a model whose branches mix modalities inside the encoder supports ``zero`` only.
        separable: each modality is encoded on its own (``encode_one``, ``encode``, ``fuse_decode``):
            features computed once per batch are reused by every condition, and ``folded_head()``
            may give the folded subset evaluation.
        features: ``forward_features(modalities, present, fill) -> (logits, per-stage per-modality
            features [B, M, C, H, W])`` exists, for the distillation losses (HPDM, RRM).
        outputs: names of what ``forward(..., output=name)`` can return; the first is the default.
        scored: the output the protocols score (an ensemble's, for a model with several).
    """

    fills: tuple[str, ...] = FILLS
    separable: bool = False
    features: bool = False
    outputs: tuple[str, ...] = ("logits",)
    scored: str = "logits"

    def __post_init__(self) -> None:
        if not self.fills or set(self.fills) - set(FILLS):
            raise ValueError(f"fills must be a non-empty subset of {FILLS}, got {self.fills}")
        if self.scored not in self.outputs:
            raise ValueError(f"scored output {self.scored!r} is not among the outputs {self.outputs}")


UNDECLARED = Capabilities()
"""An external model: both fills offered (its own business), no fast path, no features."""


def capabilities_of(model: nn.Module) -> Capabilities:
    caps = getattr(model, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else UNDECLARED


def declares(model: nn.Module) -> bool:
    """The model follows the contract (takes ``fill=``), as opposed to an external ``model(mods, present)``."""
    return isinstance(getattr(model, "capabilities", None), Capabilities)


def model_label(model: nn.Module) -> str:
    return str(getattr(model, "model_name", None) or type(model).__name__)


def check_fill(caps: Capabilities, fill: str, model: str, asked_by: str) -> None:
    """Refuse, before any compute, a fill the model cannot do (e.g. ``drop`` on CMNeXt)."""
    if fill not in FILLS:
        raise ConfigError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    if fill not in caps.fills:
        why = (" (its branches mix modalities inside the encoder, so an absent input cannot be left out)"
               if caps.fills == ("zero",) else "")
        hint = f"; train it with --fill {caps.fills[0]}" if asked_by.startswith("card") else ""
        raise ConfigError(f"model {model} supports fill {' or '.join(caps.fills)} only; {asked_by} asks for "
                          f"fill {fill!r}{why}{hint}")


def check_features(caps: Capabilities, model: str, needed_by: Iterable[str], where: str) -> None:
    """Refuse a recipe whose losses need per-stage per-modality features on a model without them."""
    needed = sorted(needed_by)
    if needed and not caps.features:
        raise ConfigError(f"{where}: losses {', '.join(needed)} need per-stage per-modality features, which model "
                          f"{model} does not have (it fuses modalities inside its encoder); use a recipe without "
                          "them (teacher, moddrop, kd)")


def scored_logits(model: nn.Module, out: Any) -> Tensor:
    """The scored tensor of a forward's result: the logits, or the declared output of several."""
    if isinstance(out, Tensor):
        return out
    caps = capabilities_of(model)
    if isinstance(out, Mapping) and caps.scored in out:
        return out[caps.scored]
    raise ConfigError(f"model {model_label(model)} returned a {type(out).__name__}, not a logits tensor: rsbench "
                      "scores forward(modalities, present) -> logits [B, K, H, W] (a model with several outputs "
                      "returns a dict and declares which is scored: capabilities.scored)")


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters whose gradient shares are logged: the encoder's where the model says, else all."""
    fn: Callable[[], Iterable[nn.Parameter]] | None = getattr(model, "encoder_parameters", None)
    params = fn() if fn is not None else model.parameters()
    return [p for p in params if p.requires_grad]


def factory_capabilities(factory: Callable[..., nn.Module]) -> Capabilities:
    """What a registered factory's models declare, known without building one (cards are checked with it)."""
    cls = getattr(factory, "model_class", None)
    caps = getattr(cls, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else UNDECLARED


def builds(cls: type, options: Callable[..., Any] | None = None
           ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator on a model factory: the class it builds (so its capabilities are known before building)
    and, for a ``**kw`` factory, the function whose keyword-only parameters are its options."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        factory.model_class = cls  # type: ignore[attr-defined]
        factory.options_from = options or factory  # type: ignore[attr-defined]
        return factory

    return deco


def factory_options(factory: Callable[..., nn.Module]) -> dict[str, inspect.Parameter]:
    """The keyword options a factory takes (cards' ``model_options`` and common model keys are checked
    against these); an empty result with ``**kw`` means "not declared": anything is passed through."""
    target = getattr(factory, "options_from", factory)
    params = inspect.signature(target).parameters
    return {k: p for k, p in params.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty}


def present_mask(names: Sequence[str], present: Present, batch_size: int, device: torch.device | None) -> Tensor:
    """``present`` as a bool [B, M] (None: all; names: the same subset for each sample); every sample keeps one."""
    m = len(names)
    if present is None:
        return torch.ones(batch_size, m, dtype=torch.bool, device=device)
    if not isinstance(present, Tensor):
        chosen = [present] if isinstance(present, str) else list(present)
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; this model has {list(names)}")
        present = torch.tensor([n in chosen for n in names], dtype=torch.bool, device=device).expand(batch_size, m)
    if present.shape != (batch_size, m):
        raise ValueError(f"present must have shape [B={batch_size}, M={m}], got {list(present.shape)}")
    present = present.to(device=device, dtype=torch.bool)
    empty = (~present.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"samples {empty} have no modality present; at least one is needed")
    return present
