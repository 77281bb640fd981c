"""``rsbench.evaluate(model, ...)`` for any model: what is refused, in one line naming the contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rsbench
from rsbench.errors import ConfigError
from tests.conftest import TINY_SYNTH

MODS = ("rgb", "depth", "event", "lidar")


class Mean(nn.Module):
    """An external model: mean of its inputs through a 1x1 conv; ``bad`` breaks it in one way."""

    def __init__(self, bad: str = "", k: int = 25) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, k, 1)
        self.bad = bad

    def forward(self, modalities, present=None):
        x = torch.stack(list(modalities.values())).mean(0)
        out = self.conv(x)
        if self.bad == "nan" and len(modalities) == 1 and "depth" in modalities:
            out = out.clone()
            out[0, 0, 0, 0] = float("nan")
        if self.bad == "inf":
            out = out.clone()
            out[:, 3] = float("inf")
        if self.bad == "tuple":
            return out, x
        return out


@pytest.fixture(scope="module")
def ds(synth_cache):
    from rsbench.data import create_dataset
    from tests.conftest import cache_env

    with cache_env(synth_cache):
        return create_dataset("deliver-synth", split="val", synth=TINY_SYNTH)


def test_an_external_model_is_scored(ds):
    result = rsbench.evaluate(Mean(), ds, "emm-drop")
    assert len(result.subsets) == 15


def test_nan_logits_are_refused_naming_the_condition(ds):
    with pytest.raises(ConfigError, match=r"returned 1 NaN or infinite logits under condition depth;"):
        rsbench.evaluate(Mean("nan"), ds, "emm-drop")


def test_infinite_logits_are_refused(ds):
    with pytest.raises(ConfigError, match=r"NaN or infinite logits under condition rgb\+depth\+event\+lidar"):
        rsbench.evaluate(Mean("inf"), ds, "full")


def test_a_tuple_is_refused_naming_the_contract(ds):
    with pytest.raises(ConfigError, match=r"returned a tuple, not a logits tensor: rsbench scores "
                                          r"forward\(modalities, present\) -> logits \[B, K, H, W\]"):
        rsbench.evaluate(Mean("tuple"), ds, "full")


def test_a_plain_function_is_refused_naming_the_contract(ds):
    def fn(modalities, present=None):
        return torch.zeros(1)

    with pytest.raises(ConfigError, match=r"rsbench scores a torch.nn.Module .*got function \(wrap a function"):
        rsbench.evaluate(fn, ds, "full")


def test_wrong_class_count_names_the_expected_shape(ds):
    with pytest.raises(ConfigError, match=r"expected \(\d+, 25, 32, 32\)"):
        rsbench.evaluate(Mean(k=7), ds, "full")
