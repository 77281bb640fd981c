"""Protocols and summaries: subsets, mIoU-E(p), fills, and evaluation of an external model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rsbench
from rsbench.data import create_dataset
from rsbench.errors import ConfigError
from rsbench.evaluation import evaluate, expected_miou, modality_subsets, summarize
from rsbench.models import create_model
from tests.conftest import TINY_SYNTH


def test_subsets_are_all_non_empty_sets_largest_first() -> None:
    subsets = modality_subsets(["a", "b", "c", "d"])
    assert len(subsets) == 15 and len(set(subsets)) == 15
    assert subsets[0] == ("a", "b", "c", "d") and all(len(s) >= 1 for s in subsets)
    assert len(modality_subsets(["f", "e", "l"])) == 7


def test_expected_miou_by_hand() -> None:
    per = {"a+b": 60.0, "a": 40.0, "b": 10.0}
    p = 0.2  # weights: full (1-p)^2 = .64; one missing p(1-p) = .16 each
    want = (0.64 * 60 + 0.16 * 40 + 0.16 * 10) / (0.64 + 0.32)
    assert expected_miou(per, ["a", "b"], p) == pytest.approx(want)
    s = summarize(per, ["a", "b"])
    assert s["full"] == 60 and s["avg"] == pytest.approx(110 / 3) and s["worst"] == 10
    assert s["relative"] == pytest.approx(110 / 3 / 60)


class ConstantByPresence(nn.Module):
    """An external model (not an rsbench segmentor) that predicts class 0 everywhere and logs its inputs."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.calls: list[tuple[str, ...]] = []

    def forward(self, modalities: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(sorted(modalities)))
        x = next(iter(modalities.values()))
        logits = torch.zeros(x.shape[0], self.num_classes, *x.shape[-2:])
        logits[:, 0] = 1.0
        return logits


def test_evaluate_any_module_with_drop_fill() -> None:
    ds = create_dataset("mcubes-synth", split="val", synth=TINY_SYNTH)
    model = ConstantByPresence(ds.info.num_classes)
    result = rsbench.evaluate(model, ds, "emm", fill="drop", batch_size=2)
    assert len(result.subsets) == 15
    # with fill=drop the external model receives only the present modalities
    assert {len(c) for c in model.calls} == {1, 2, 3, 4}
    # a constant predictor scores the same on every subset
    assert len({round(v["miou"], 6) for v in result.subsets.values()}) == 1


def test_fills_differ_for_a_drop_trained_model_and_zero_fill_matches_manual() -> None:
    ds = create_dataset("deliver-synth", split="val", synth=TINY_SYNTH)
    torch.manual_seed(0)
    model = create_model("segformer_mit_test", modalities=ds.modalities, num_classes=ds.info.num_classes,
                         embed_dim=16).eval()
    zero = evaluate(model, ds, "all-subsets", fill="zero", batch_size=4)
    drop = evaluate(model, ds, "all-subsets", fill="drop", batch_size=4)
    assert zero.subsets["rgb+depth+event+lidar"] == drop.subsets["rgb+depth+event+lidar"]
    assert zero.subsets["rgb"]["miou"] != drop.subsets["rgb"]["miou"]
    # batch size does not change dataset-level scores
    assert evaluate(model, ds, "full", batch_size=1).summary == pytest.approx(
        evaluate(model, ds, "full", batch_size=3).summary)


def test_bad_protocol_fill_and_modalities() -> None:
    ds = create_dataset("deliver-synth", split="val", synth=TINY_SYNTH)
    model = create_model("segformer_mit_test", modalities=ds.modalities, num_classes=ds.info.num_classes)
    with pytest.raises(ConfigError, match="unknown protocol"):
        evaluate(model, ds, "everything")
    with pytest.raises(ConfigError, match="not found"):
        evaluate(model, ds, "missing/card.yaml")
    with pytest.raises(ConfigError, match="unknown fill"):
        evaluate(model, ds, "full", fill="mean")
    other = create_model("segformer_mit_test", modalities=("rgb", "depth"), num_classes=ds.info.num_classes)
    with pytest.raises(ConfigError, match="differ"):
        evaluate(other, ds, "full")


@pytest.mark.parametrize("protocol", ["emm", "emm-drop", "rmm-50", "noise-mid"])
def test_cached_conditions_equal_the_naive_path(protocol: str) -> None:
    from rsbench.data.transforms import collate
    from rsbench.models.folded import FoldedHead
    from rsbench.protocols import conditions, load_protocol
    from rsbench.protocols.engine import _Batch, _cached_logits, _FoldedWalk, _naive_logits

    ds = create_dataset("deliver-synth", split="val", synth=TINY_SYNTH)
    torch.manual_seed(1)
    model = create_model("segformer_mit_test", modalities=ds.modalities, num_classes=ds.info.num_classes,
                         embed_dim=16, fill="drop").eval()
    sample = collate([ds[i] for i in range(3)])
    names = list(ds.modalities)
    card = load_protocol(protocol)
    with torch.no_grad():
        zero = list(model.encoder(torch.zeros_like(sample["modalities"][names[0]][:1])))
        batch = _Batch(model, sample["modalities"], [0, 1, 2], names, card, zero)
        conds = conditions(card, names)
        walked = dict(_FoldedWalk(FoldedHead(model), conds, names, card.fill).run(batch, conds))
        assert len(walked) == len(conds)
        for cond in conds:
            cached = _cached_logits(batch, cond, card.fill)
            naive = _naive_logits(batch, cond, card.fill)
            assert (cached - naive).abs().max() <= 1e-4, cond.key
            assert (walked[cond] - naive).abs().max() <= 1e-4, cond.key
    fast = evaluate(model, ds, protocol, batch_size=2)
    slow = evaluate(model, ds, protocol, batch_size=2, cache=False)
    assert fast.summary == pytest.approx(slow.summary, abs=1e-6)
