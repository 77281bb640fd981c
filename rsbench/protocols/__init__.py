"""Robustness protocols as cards, run by one engine (METHOD.md section 5).

``load_protocol(name)`` reads a card, ``conditions(card, modalities)`` lists what it scores and
``run_protocol(model, dataset, card)`` scores it; ``rsbench.evaluate`` is the public face.
"""

from rsbench.protocols.card import ALIASES, ProtocolCard, builtin_protocols, load_protocol, resolve_protocols
from rsbench.protocols.conditions import Change, Condition, conditions, modality_subsets, subset_key
from rsbench.protocols.engine import EvalResult, run_protocol
from rsbench.protocols.summary import expected_miou, importance, summarize

__all__ = [
    "ALIASES",
    "Change",
    "Condition",
    "EvalResult",
    "ProtocolCard",
    "builtin_protocols",
    "conditions",
    "expected_miou",
    "importance",
    "load_protocol",
    "modality_subsets",
    "resolve_protocols",
    "run_protocol",
    "subset_key",
    "summarize",
]
