"""rsbench: benchmark and robustness evaluation for multi-modal semantic segmentation."""

from __future__ import annotations

__version__ = "0.1.0"
