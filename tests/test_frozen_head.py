"""A frozen SegFormer head (the distillation teacher's) runs folded: same logits as the ordinary forward."""

from __future__ import annotations

import pytest
import torch

from rsbench.models.head import SegFormerHead


def _head_and_feats(seed: int) -> tuple[SegFormerHead, list[torch.Tensor]]:
    torch.manual_seed(seed)
    head = SegFormerHead([8, 16, 24, 32], num_classes=5, embed_dim=12)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them in is tested
        head.linear_fuse.bn.running_mean.normal_()
        head.linear_fuse.bn.running_var.uniform_(0.5, 2.0)
        head.linear_fuse.bn.weight.normal_()
        head.linear_fuse.bn.bias.normal_()
    feats = [torch.randn(2, c, s, s + 1) for c, s in zip([8, 16, 24, 32], [16, 8, 4, 2], strict=True)]
    return head, feats


@pytest.mark.parametrize("train_mode", [False, True])
def test_frozen_head_gives_the_ordinary_logits(train_mode: bool) -> None:
    head, feats = _head_and_feats(0)
    head.dropout.p = 0.0  # dropout draws would differ between the two calls
    head.train(train_mode)
    expected = head(feats)
    head.requires_grad_(False)
    got = head(feats)
    assert got.shape == expected.shape == (2, 5, 16, 17)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_folded_weights_follow_weight_changes() -> None:
    head, feats = _head_and_feats(1)
    head.eval().requires_grad_(False)
    before = head(feats)
    assert head(feats) is not before and torch.equal(head(feats), before)  # cached weights, same result
    with torch.no_grad():
        head.linear_c3.proj.weight.mul_(2.0)
        head.linear_fuse.bn.running_var.mul_(3.0)
    head.requires_grad_(True)
    expected = head(feats)
    head.requires_grad_(False)
    torch.testing.assert_close(head(feats), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(expected, before)


def test_frozen_head_still_passes_gradients_to_its_inputs() -> None:
    head, feats = _head_and_feats(2)
    head.eval()
    leaf = [f.clone().requires_grad_(True) for f in feats]
    head(leaf).square().sum().backward()
    expected = [f.grad for f in leaf]
    head.requires_grad_(False)
    leaf = [f.clone().requires_grad_(True) for f in feats]
    head(leaf).square().sum().backward()
    for got, want in zip([f.grad for f in leaf], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
