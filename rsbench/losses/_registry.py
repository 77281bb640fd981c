"""The losses registry, kept apart from ``__init__`` so loss modules can import it."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rsbench.registry import Registry

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")
