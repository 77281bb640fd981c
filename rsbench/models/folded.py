"""Folded subset evaluation of the shared-encoder segmentor (a capability it declares, used by the protocol
engine): each modality's features become one pre-activation map, a subset is a sum.

Fusion is a (weighted) mean over modality slots, the SegFormer head is linear up to its BatchNorm
and ReLU, and bilinear upsampling is linear and commutes with channel mixing. So the head's
pre-BatchNorm map of a fused input splits into per-modality terms::

    pre = sum_slots w_slot * G(slot) + c,    G(f) = sum_i up(A_i f_i),   A_i = W_fuse[block i] W_i,
    c = sum_i W_fuse[block i] b_i

where ``W_i, b_i`` is stage i's projection (``linear_c{i+1}``) and ``W_fuse[block i]`` its block of
the 1x1 fuse conv. ``G`` is computed once per batch and modality (once per model for the
zero-filled input), at each stage's own resolution and then upsampled to 1/4; a condition then
costs a weighted sum of M maps, the BatchNorm (eval statistics), the ReLU, the 1x1 classifier and
the final upsampling, instead of the whole 4E -> E fuse conv. A test checks that the logits equal
the ordinary forward for every condition of every protocol and both fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from rsbench.models.segmentor import MultiModalSegmentor


class FoldedHead:
    """The head of ``model`` split per modality slot (see the module doc); ``model.folded_head()`` builds it."""

    def __init__(self, model: MultiModalSegmentor) -> None:
        head = model.head
        mats, const = head.folded_weights(fold_bn=False)  # the same folding as a frozen head's forward
        self.proj: list[Tensor] = [m.T for m in mats]  # A_i: [E, C_i]
        bn = head.linear_fuse.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.scale = scale[None, :, None, None]
        self.shift = ((const - bn.running_mean) * scale + bn.bias)[None, :, None, None]
        self.pred = head.linear_pred
        self._zero: dict[tuple, Tensor] = {}

    def term(self, feats: Sequence[Tensor]) -> Tensor:
        """``G``: one slot's per-stage features ``[B, C_i, h_i, w_i]`` -> ``[B, E, h_1, w_1]``."""
        size = feats[0].shape[-2:]
        out = None
        for a, f in zip(self.proj, feats, strict=True):
            # channels-last: on the CPU, bilinear upsampling of 768 channels is ~80x faster in this layout
            y = (f.permute(0, 2, 3, 1) @ a.T).permute(0, 3, 1, 2)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        return out

    def zero_term(self, model: MultiModalSegmentor, like: Tensor) -> Tensor:
        """``G`` of a zero-filled input of ``like``'s size, computed once per size."""
        key = (tuple(like.shape[1:]), like.device, like.dtype)
        if key not in self._zero:
            self._zero[key] = self.term(model.encode_one(torch.zeros_like(like[:1])))
        return self._zero[key]

    def logits_affine(self, total: Tensor, mult: Tensor, add: Tensor, out_size: Sequence[int]) -> Tensor:
        """``relu(total * mult + add)``, the classifier and upsampling (``mult``/``add`` fold the weights and BN)."""
        x = torch.addcmul(add, total, mult).relu_().contiguous(memory_format=torch.channels_last)
        x = self.pred(x)
        if tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(x, size=tuple(out_size), mode="bilinear", align_corners=False)
        return x


def walk_order(choices: list[tuple]) -> list[int]:
    """An order of the conditions in which consecutive ones differ in few slots (greedy nearest neighbour).

    For the subsets of M modalities it changes one slot per step, as a Gray code does, so a running sum
    of per-slot terms costs about one add per condition.
    """
    if not choices:
        return []
    left = set(range(1, len(choices)))
    order = [0]
    while left:
        last = choices[order[-1]]
        nxt = min(left, key=lambda i: (sum(a != b for a, b in zip(choices[i], last, strict=True)), i))
        order.append(nxt)
        left.remove(nxt)
    return order
