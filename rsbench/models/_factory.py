"""``create_model`` / ``list_models`` over the model registry (timm's ``_factory`` habit)."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from rsbench.errors import ConfigError
from rsbench.models._registry import MODELS


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. ``None`` values are dropped so unset CLI options keep the defaults.

    Raises ConfigError for an unknown name (with close matches) or an option the model does not take.
    """
    factory = MODELS.get(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ConfigError(f"model {name!r} takes no option(s) {unknown}; it takes {sorted(params)}")
        return factory(**kwargs)
    try:
        return factory(**kwargs)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise ConfigError(f"model {name!r}: {e}") from None
        raise


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a wildcard pattern, sorted."""
    return MODELS.list(pattern)
