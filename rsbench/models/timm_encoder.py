"""Any timm backbone as a 4-stage encoder for the segmentor (smp's ``timm_universal`` idea).

``timm.create_model(name, features_only=True, out_indices=...)`` with the last four
feature levels by default (strides 4/8/16/32 for CNNs such as resnet/efficientnet).
No download ever: ImageNet weights come from a local file via ``pretrained=<path>``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from typing import Any

import timm
import torch
from torch import Tensor, nn

from rsbench.errors import ConfigError


class TimmEncoder(nn.Module):
    """timm features-only backbone: [B, 3, H, W] -> 4 maps [B, C_i, H/s_i, W/s_i].

    Args:
        name: a timm model name (``timm.list_models()``).
        pretrained: False, or the path of a LOCAL checkpoint in the timm model's own key
            layout (classifier keys are dropped; anything else that does not fit raises).
        out_indices: the 4 feature levels to return (default: the last four).
        **kw: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).
    """

    checkpoint_prefix = "model."

    def __init__(
        self,
        name: str,
        pretrained: bool | str | os.PathLike = False,
        out_indices: Sequence[int] = (-4, -3, -2, -1),
        **kw: Any,
    ) -> None:
        super().__init__()
        if pretrained is True:
            raise ConfigError(
                f"cannot download {name!r} weights (no network): pass pretrained=<path to a local checkpoint file>"
            )
        if len(out_indices) != 4:
            raise ConfigError(f"the segmentor needs 4 feature levels, got out_indices={tuple(out_indices)}")
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
            raise ConfigError(f"unknown timm model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
        self.name = name
        self._kw = dict(kw)
        self.model = timm.create_model(name, pretrained=False, features_only=True, out_indices=tuple(out_indices), **kw)
        self.feature_info: list[dict[str, Any]] = [
            {"num_chs": d["num_chs"], "reduction": d["reduction"], "module": d["module"]}
            for d in self.model.feature_info.get_dicts()
        ]
        if pretrained:
            from rsbench.models.checkpoint import load_pretrained

            load_pretrained(self, pretrained)

    def unused_checkpoint_keys(self, keys: Iterable[str]) -> set[str]:
        """Keys of the full timm model (classifier, final convs) that the features-only model drops."""
        try:
            with torch.device("meta"):
                full = timm.create_model(self.name, pretrained=False, **self._kw)
        except Exception:  # some timm inits compute on tensors and fail on meta
            full = timm.create_model(self.name, pretrained=False, **self._kw)
        extra = set(full.state_dict()) - {k[len(self.checkpoint_prefix) :] for k in self.state_dict()}
        return set(keys) & extra

    def forward(self, x: Tensor) -> list[Tensor]:
        """x: [B, 3, H, W] -> 4 maps [B, C_i, H_i, W_i] (see ``feature_info``)."""
        return list(self.model(x))
