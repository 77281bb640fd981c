"""The registries of the models package: encoders (feature extractors) and segmentors."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rsbench.registry import Registry

ENCODERS: Registry[Callable[..., nn.Module]] = Registry("encoder")
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
