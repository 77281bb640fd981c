"""Registered SegFormer segmentors: MiT-B0..B5, a tiny test variant, and any timm backbone.

Each variant is a small function holding its architecture; the common keyword
arguments (all optional) are ``modalities``, ``num_classes``, ``embed_dim``, ``fill``,
``drop_path_rate`` and ``pretrained`` (a LOCAL checkpoint path or None).

Defaults: the DELIVER modalities and classes; the SegFormer paper's head width (256 for
B0/B1, 768 for B2..B5). The published RobustSeg model is MiT-B0 with ``embed_dim=768``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rsbench.models._registry import ENCODERS, MODELS
from rsbench.models.checkpoint import load_pretrained
from rsbench.models.contract import builds
from rsbench.models.segmentor import FillMode, MultiModalSegmentor
from rsbench.models.timm_encoder import TimmEncoder

DEFAULT_MODALITIES: tuple[str, ...] = ("rgb", "depth", "event", "lidar")
DEFAULT_NUM_CLASSES = 25

PathLike = str | os.PathLike | None


def _segformer_mit(
    encoder_name: str,
    default_embed_dim: int,
    *,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    num_classes: int = DEFAULT_NUM_CLASSES,
    embed_dim: int | None = None,
    fill: FillMode = "drop",
    drop_path_rate: float = 0.1,
    pretrained: PathLike = None,
    dropout: float = 0.1,
) -> MultiModalSegmentor:
    encoder = ENCODERS.get(encoder_name)(drop_path_rate=drop_path_rate)
    model = MultiModalSegmentor(encoder, modalities, num_classes, embed_dim or default_embed_dim, fill, dropout)
    if pretrained:
        # an ImageNet MiT file initialises the encoder only; a SegFormer file must fit the head too
        load_pretrained(model, pretrained, allow_missing_head=True)
    return model


@MODELS.register()
@builds(MultiModalSegmentor, options=_segformer_mit)
def segformer_mit_b0(**kw) -> MultiModalSegmentor:
    return _segformer_mit("mit_b0", 256, **kw)


@MODELS.register()
@builds(MultiModalSegmentor, options=_segformer_mit)
def segformer_mit_b1(**kw) -> MultiModalSegmentor:
    return _segformer_mit("mit_b1", 256, **kw)


@MODELS.register()
@builds(MultiModalSegmentor, options=_segformer_mit)
def segformer_mit_b2(**kw) -> MultiModalSegmentor:
    return _segformer_mit("mit_b2", 768, **kw)


@MODELS.register()
@builds(MultiModalSegmentor, options=_segformer_mit)
def segformer_mit_b3(**kw) -> MultiModalSegmentor:
    return _segformer_mit("mit_b3", 768, **kw)


@MODELS.register()
@builds(MultiModalSegmentor, options=_segformer_mit)
def segformer_mit_b4(**kw) -> MultiModalSegmentor:
    return _segformer_mit("mit_b4", 768, **kw)


@MODELS.register()
@builds(MultiModalSegmentor, options=_segformer_mit)
def segformer_mit_b5(**kw) -> MultiModalSegmentor:
    return _segformer_mit("mit_b5", 768, **kw)


@MODELS.register()
@builds(MultiModalSegmentor, options=_segformer_mit)
def segformer_mit_test(**kw) -> MultiModalSegmentor:
    """Tiny MiT (dims 8/16/24/32) with a 32-wide head: tests, demo, CPU CI."""
    return _segformer_mit("mit_test", 32, **kw)


@MODELS.register()
@builds(MultiModalSegmentor)
def segformer_timm(
    *,
    backbone: str = "resnet18",
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    num_classes: int = DEFAULT_NUM_CLASSES,
    embed_dim: int = 256,
    fill: FillMode = "drop",
    drop_path_rate: float | None = None,
    pretrained: PathLike = None,
    dropout: float = 0.1,
) -> MultiModalSegmentor:
    """SegFormer head on a timm backbone; ``pretrained`` is a local file in timm's key layout."""
    kw = {} if drop_path_rate is None else {"drop_path_rate": drop_path_rate}
    encoder = TimmEncoder(backbone, pretrained=pretrained or False, **kw)
    return MultiModalSegmentor(encoder, modalities, num_classes, embed_dim, fill, dropout)
