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
    expected_miou,
    modality_subsets,
    run_protocol,
    subset_key,
    summarize,
)
from rsbench.protocols.engine import FILLS

__all__ = ["FILLS", "EvalResult", "evaluate", "evaluate_full", "expected_miou", "modality_subsets", "subset_key",
           "summarize"]


evaluate = run_protocol
"""``evaluate(model, dataset, protocol="full", fill=None, batch_size=4, device="cpu", convention="nanmean",
progress=False, cache=True, num_workers=0)``: score ``model`` under a protocol card (name, alias, path or
``ProtocolCard``); ``fill`` overrides the card's absent-modality handling. See ``rsbench.protocols.engine``."""


def evaluate_full(model: nn.Module, dataset: SegmentationDataset, batch_size: int = 4,
                  device: str | torch.device = "cpu") -> float:
    """Full-modality mIoU (nanmean), used for validation during training.

    Non-finite logits are scored here rather than refused: a diverged run is reported by the loop's loss
    check, which names the iteration and each loss term."""
    return evaluate(model, dataset, "full", batch_size=batch_size, device=device,
                    check_finite=False).summary["full"]
