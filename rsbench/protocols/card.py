"""Protocol cards: each robustness protocol as data (``protocols/*.yaml``), parsed strictly.

A card says what kind of protocol it is, how absent inputs are filled, its parameters and its
seed; ``conditions`` (``rsbench.protocols.conditions``) turns it into the list of conditions the
engine runs. Unknown keys and wrong types are rejected like method cards; a path to a user's
``.yaml`` works wherever a shipped name does. Definitions: METHOD.md section 5.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from rsbench.cards import read_yaml_mapping, validate_keys
from rsbench.errors import ConfigError

ALIASES = {"all-subsets": "emm"}
"""Other names of shipped cards."""


@dataclass(frozen=True)
class ProtocolCard:
    """One robustness protocol."""

    name: str
    description: str = ""
    kind: Literal["full", "subsets", "rmm", "noise", "corruptions"] = "full"
    """``full``: all inputs; ``subsets``: every non-empty modality subset (EMM); ``rmm``: every subset,
    the others randomly masked; ``noise``: every modality noisy (NM); ``corruptions``: one modality at
    a time through each of its sensor's faults at each severity."""
    fill: Literal["zero", "drop"] = "zero"
    """Absent modalities: zero-filled inputs (the published EMM) or removed from the fusion."""
    rate: float | None = None
    """``rmm``: probability that an element of a masked modality is zeroed."""
    density: float | None = None
    """``noise``: salt-and-pepper density (half set to the sample's max, half to its min)."""
    std: float | None = None
    """``noise``: std of the additive Gaussian noise (normalised space; not on events)."""
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """``corruptions``: the severities to run (1..5)."""
    corruptions: list[str] = field(default_factory=list)
    """``corruptions``: names to run (empty: every corruption that applies to each modality)."""
    seed: int = 0
    """Every random draw is a function of (seed, sample index, modality), nothing else."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def __post_init__(self) -> None:
        if self.kind == "rmm" and (self.rate is None or not 0.0 < self.rate <= 1.0):
            raise ConfigError(f"protocol {self.name}: rmm needs 'rate' in (0, 1], got {self.rate}")
        if self.kind == "noise":
            if self.density is None or not 0.0 <= self.density <= 1.0:
                raise ConfigError(f"protocol {self.name}: noise needs 'density' in [0, 1], got {self.density}")
            if self.std is None or self.std < 0:
                raise ConfigError(f"protocol {self.name}: noise needs 'std' >= 0, got {self.std}")
        if self.kind == "corruptions":
            from rsbench.corruptions import MAX_SEVERITY, all_corruptions

            bad = [s for s in self.severities if not 1 <= s <= MAX_SEVERITY]
            if bad or not self.severities:
                raise ConfigError(f"protocol {self.name}: severities must be 1..{MAX_SEVERITY}, got {self.severities}")
            unknown = sorted(set(self.corruptions) - set(all_corruptions()))
            if unknown:
                raise ConfigError(f"protocol {self.name}: unknown corruptions {unknown}")




ORDER = ("full", "emm", "emm-drop", "rmm-25", "rmm-50", "rmm-75", "noise-low", "noise-mid", "noise-high",
         "corruptions")
"""Display order of the shipped cards (others follow by name)."""


def builtin_protocols() -> list[str]:
    """Names of the protocol cards shipped with rsbench, in display order."""
    folder = resources.files("rsbench.cards_protocols")
    names = [p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def protocol_path(name_or_path: str) -> Path:
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"protocol card file not found: {path}")
        return path
    name = ALIASES.get(name_or_path, name_or_path)
    path = Path(str(resources.files("rsbench.cards_protocols") / f"{name}.yaml"))
    if not path.is_file():
        import difflib

        known = builtin_protocols()
        close = difflib.get_close_matches(name_or_path, [*known, *ALIASES], n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown protocol {name_or_path!r}{hint} (known: {', '.join(known)}, all)")
    return path


def load_protocol(name_or_path: str) -> ProtocolCard:
    """A shipped protocol card by name (or alias), or a user's card by path."""
    path = protocol_path(name_or_path)
    values = validate_keys(read_yaml_mapping(path), path.name, ProtocolCard)
    values.setdefault("name", path.stem)
    return ProtocolCard(**values)


def protocol_from_dict(values: dict[str, Any]) -> ProtocolCard:
    return ProtocolCard(**validate_keys(values, "saved protocol", ProtocolCard))


def resolve_protocols(spec: str) -> list[ProtocolCard]:
    """``all`` -> every shipped card; else a comma-separated list of names or paths."""
    names = builtin_protocols() if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ConfigError("no protocol given")
    return [load_protocol(n) for n in names]
