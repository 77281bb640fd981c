"""The field's architectures, one module each (its variants, its layers, the released key layout it reads)."""

from __future__ import annotations

from rsbench.models.zoo import cmnext as cmnext  # noqa: F401  (registers the variants)
