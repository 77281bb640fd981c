"""Models: MiT encoder, SegFormer head, the shared-encoder multi-modal segmentor, timm backbones, and the
field's architectures (``zoo/``: CMNeXt), each declaring its capabilities (``contract.py``).

``create_model("segformer_mit_b0", modalities=("rgb", "depth"), num_classes=25)``;
``list_models("cmnext_*")``. See DESIGN.md "Model contract".
"""

from __future__ import annotations

from rsbench.models import segformer as _segformer  # noqa: F401  (registers the variants)
from rsbench.models import zoo as _zoo  # noqa: F401  (registers the field's architectures)
from rsbench.models._factory import create_model, list_models
from rsbench.models._registry import ENCODERS, MODELS
from rsbench.models.checkpoint import load_pretrained, read_state_dict, to_official_state_dict
from rsbench.models.contract import FILLS, Capabilities, capabilities_of
from rsbench.models.head import SegFormerHead
from rsbench.models.mit import MixVisionTransformer
from rsbench.models.segmentor import MultiModalSegmentor
from rsbench.models.timm_encoder import TimmEncoder

__all__ = [
    "Capabilities",
    "ENCODERS",
    "FILLS",
    "MODELS",
    "MixVisionTransformer",
    "MultiModalSegmentor",
    "SegFormerHead",
    "TimmEncoder",
    "capabilities_of",
    "create_model",
    "list_models",
    "load_pretrained",
    "read_state_dict",
    "to_official_state_dict",
]
