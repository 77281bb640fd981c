"""Evaluation of any segmentor under a protocol card (the public face of ``rsbench.protocols``).

``evaluate(model, dataset, protocol)`` needs only ``model(modalities, present) -> logits``, so any
``nn.Module`` can be scored. Protocols are cards (``protocols/*.yaml``; ``rsbench eval --protocol
all`` runs every one): ``full``, ``emm`` (alias ``all-subsets``; absent inputs zero-filled, the
published EMM), ``emm-drop`` (absent modalities removed from the fusion), ``rmm-25/50/75``
(random-missing) and ``noise-low/mid/high`` (noisy modalities). See ``rsbench.protocols``.
"""

from __future__ import annotations

import torch
from torch import nn

from rsbench.data import SegmentationDataset
from rsbench.protocols import (
    EvalResult,
    ProtocolCard,
    expected_miou,
    modality_subsets,
    run_protocol,
    subset_key,
    summarize,
)
from rsbench.protocols.engine import FILLS

__all__ = ["FILLS", "EvalResult", "evaluate", "evaluate_full", "expected_miou", "modality_subsets", "subset_key",
           "summarize"]


def evaluate(
    model: nn.Module,
    dataset: SegmentationDataset,
    protocol: str | ProtocolCard = "full",
    fill: str | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    convention: str = "nanmean",
    progress: bool = False,
    cache: bool = True,
    num_workers: int = 0,
) -> EvalResult:
    """Score ``model`` on ``dataset`` under ``protocol`` (a card name, alias, path or ``ProtocolCard``).

    ``fill`` (``zero``/``drop``) overrides the card's handling of absent modalities; ``cache``
    encodes each modality once per batch for rsbench segmentors (see ``rsbench.protocols.engine``).
    """
    return run_protocol(model, dataset, protocol, fill, batch_size, device, convention, progress, cache, num_workers)


def evaluate_full(model: nn.Module, dataset: SegmentationDataset, batch_size: int = 4,
                  device: str | torch.device = "cpu") -> float:
    """Full-modality mIoU (nanmean), used for validation during training."""
    return evaluate(model, dataset, "full", batch_size=batch_size, device=device).summary["full"]
