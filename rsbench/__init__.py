"""rsbench: benchmark and robustness evaluation for multi-modal semantic segmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rsbench._version import __version__ as __version__  # re-exported: rsbench.__version__

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from rsbench.data import SegmentationDataset
    from rsbench.evaluation import EvalResult


def evaluate(
    model: nn.Module,
    dataset: str | SegmentationDataset,
    protocol: str = "full",
    *,
    root: str | Path | None = None,
    split: str = "val",
    **kwargs: Any,
) -> EvalResult:
    """Score any ``model(modalities, present) -> logits`` on a dataset under a protocol.

    Args:
        model: an ``nn.Module``; rsbench's segmentors and any external model with that call.
        dataset: a dataset name (``deliver``, ``muses-synth``, ...) or a loader instance.
        protocol: a protocol card (``full``, ``emm``/``all-subsets``, ``emm-drop``, ``rmm-25/50/75``,
            ``noise-low/mid/high``, ``corruptions``), a path to a card, or a ``ProtocolCard``.
        root: folder of a real dataset (``-synth`` data is generated on first use).
        **kwargs: ``fill`` (override the card's), ``batch_size``, ``device``, ``convention``, ``progress``,
            ``num_workers``.
    """
    from rsbench.data import create_dataset
    from rsbench.evaluation import evaluate as _evaluate

    ds = create_dataset(dataset, root=root, split=split) if isinstance(dataset, str) else dataset
    return _evaluate(model, ds, protocol, **kwargs)
