"""Run the RELEASED RobustSeg code once on small seeded inputs and write what it returns.

Not part of the test run and not rsbench code: it imports the released ``mmkd``/``semseg``
modules from a local checkout of https://github.com/RobustSeg/RobustSeg (commit ea9add7) and
writes ``released_values.json`` beside this file, which ``tests/test_released.py`` reads.
The inputs are rebuilt in the tests from the seeds and shapes recorded in that file.

Command that produced the committed file (torch 2.14.1 CPU; ``mmcv-lite`` 2.2.0, ``mmengine``,
``tabulate`` and ``addict`` installed with ``pip install --target /tmp/relpkgs --no-deps ...``
for the released SegFormer head's ``ConvModule``)::

    PYTHONPATH=/tmp/relpkgs .venv/bin/python tests/released/make_values.py /path/to/RobustSeg

The released package ``semseg/__init__.py`` imports every dataset and model (einops, ...); the
modules used here are loaded without running the package ``__init__`` files.
"""

from __future__ import annotations

import json
import random
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn

OUT = Path(__file__).with_name("released_values.json")


def _bare_packages(root: Path) -> None:
    for name in ("semseg", "semseg.models", "semseg.models.segformer", "mmkd"):
        mod = types.ModuleType(name)
        mod.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = mod
    sys.path.insert(0, str(root))


def features(seed: int, m: int, shapes: list[list[int]], scale: float = 1.0, base: list | None = None,
             delta: float = 0.0) -> list[list[torch.Tensor]]:
    """Per sample, per stage ``[m, C, H, W]``; ``base`` + ``delta`` * noise when given (a student near a teacher)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(2):
        stages = []
        for j, (c, h, w) in enumerate(shapes):
            x = torch.randn(m, c, h, w, generator=g, dtype=torch.float64) * scale
            if base is not None:
                x = base[i][j][:m] + delta * x
            stages.append(x)
        out.append(stages)
    return out


def leaf(feats: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    return [[f.clone().requires_grad_(True) for f in s] for s in feats]


def grads(loss: torch.Tensor, feats: list[list[torch.Tensor]]) -> dict[str, list]:
    """Gradient w.r.t. the student features: squared norm per (sample, stage), and stage 4 in full."""
    flat = [f for s in feats for f in s]
    gs = torch.autograd.grad(loss, flat)
    per = [gs[i * len(s): (i + 1) * len(s)] for i, s in enumerate(feats)]
    return {"sq_norm": [[g.pow(2).sum().item() for g in p] for p in per],
            "last_stage": [p[-1].flatten().tolist() for p in per]}


SHAPES = [[4, 8, 6], [6, 4, 4], [8, 4, 2], [10, 2, 2]]


def rrm_cases(mmkd_rumd, mmkd_rumd_all, reg_cls) -> list[dict]:
    cases = []
    teacher = features(11, 4, SHAPES)
    for name, index, delta in (("main-near", [2, 0], 0.1), ("main-far", [2, 0, 3], 1.0), ("main-one", [1], 0.5)):
        student = leaf(features(12, len(index), SHAPES, base=[[t[index] for t in s] for s in teacher], delta=delta))
        torch.manual_seed(5)
        loss = mmkd_rumd(index, student, teacher, reg_cls(1e-5))
        cases.append({"name": name, "fn": "RUMD", "index": index, "delta": delta, "teacher_seed": 11,
                      "student_seed": 12, "noise_seed": 5, "lambda": 1e-5, "n_samples": 10,
                      "value": loss.item(), "grad": grads(loss, student)})
    student = leaf(features(13, 4, SHAPES, base=teacher, delta=0.3))
    torch.manual_seed(6)
    loss = mmkd_rumd_all(student, teacher, reg_cls())
    cases.append({"name": "zero-all", "fn": "RUMD_zero_padding_all", "index": [0, 1, 2, 3], "delta": 0.3,
                  "teacher_seed": 11, "student_seed": 13, "noise_seed": 6, "lambda": 1e-10, "n_samples": 10,
                  "value": loss.item(), "grad": grads(loss, student)})
    return cases


def labels(seed: int, size: tuple[int, int], k: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, k - 1, (2, *size), generator=g)  # class k-1 absent
    lab[:, :2, :3] = 255
    return lab


def hpdm_cases(pcumd, pcumd_random, proto_cls) -> list[dict]:
    k = 5
    protos = []
    for c, _, _ in SHAPES:
        p = proto_cls.__new__(proto_cls)  # the released __init__ puts a buffer on CUDA; only these two are used
        p.num_classes, p.feature_dim = k, c
        protos.append(p)
    lab = labels(21, (16, 12), k)
    teacher = features(11, 4, SHAPES)
    student = leaf(features(14, 2, SHAPES, base=[[t[[2, 0]] for t in s] for s in teacher], delta=0.5))
    cases = []
    loss = pcumd([2, 0], student, teacher, lab.clone(), protos)
    cases.append({"name": "main", "fn": "PCUMD", "index": [2, 0], "teacher_seed": 11, "student_seed": 14,
                  "delta": 0.5, "label_seed": 21, "num_classes": k, "value": loss.item(), "grad": grads(loss, student)})
    student = leaf(features(15, 4, SHAPES, base=teacher, delta=0.5))
    random.seed(7)
    loss = pcumd_random(student, teacher, lab.clone(), protos)
    cases.append({"name": "zero-random", "fn": "PCUMD_zero_padding_random", "index": [0, 1, 2, 3], "teacher_seed": 11,
                  "student_seed": 15, "delta": 0.5, "label_seed": 21, "num_classes": k, "python_random_seed": 7,
                  "value": loss.item(), "grad": grads(loss, student)})
    return cases


def kd_ohem_cases(ohem_cls) -> dict:
    g = torch.Generator().manual_seed(31)
    logits = torch.randn(2, 5, 8, 6, generator=g, dtype=torch.float64) * 2
    logits_t = torch.randn(2, 5, 8, 6, generator=g, dtype=torch.float64) * 2
    lab = labels(32, (8, 6), 5)
    # tools/train_deliver_mad50_proto_cur_reg.py lines 161-165, verbatim apart from the names
    loss_kl = nn.KLDivLoss(size_average=None, reduce=None, reduction="mean", log_target=False)
    kd = loss_kl(torch.log_softmax(logits, dim=1), torch.softmax(logits_t, dim=1)).clamp(min=0)
    crit = ohem_cls(ignore_label=255)
    onehot = torch.nn.functional.one_hot(lab.clamp(max=4), 5).permute(0, 3, 1, 2).double()
    ohem = {"hard": crit(logits.float(), lab).item(),  # many pixels above the threshold: their mean
            "confident": crit((logits + 8.0 * onehot).float(), lab).item()}  # few: the top n_min
    return {"logits_seed": 31, "logits_scale": 2.0, "label_seed": 32, "confident_margin": 8.0, "kd": kd.item(),
            "ohem": ohem}


def model_case(seg_cls) -> dict:
    model = seg_cls("mit_b0", num_classes=25, pretrained=False).eval()
    g = torch.Generator().manual_seed(41)
    state = {}
    for key, v in model.state_dict().items():
        state[key] = fill(key, v, g)
    model.load_state_dict(state)
    gi = torch.Generator().manual_seed(42)
    x = [torch.randn(2, 3, 64, 64, generator=gi) for _ in range(4)]
    random.seed(0)
    with torch.no_grad():
        logits, index, _ = model(x)
    return {"keys": [[k, list(v.shape)] for k, v in state.items()], "fill_seed": 41, "input_seed": 42,
            "input_shape": [4, 2, 3, 64, 64], "logits_shape": list(logits.shape),
            "logits_every_8": logits[:, :, ::8, ::8].flatten().tolist(), "logits_sum": logits.double().sum().item(),
            "logits_abs_sum": logits.double().abs().sum().item()}


def fill(key: str, v: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Deterministic weights from names and shapes (repeated in tests/test_released.py)."""
    if key.endswith("num_batches_tracked"):
        return torch.zeros_like(v)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(v.shape, generator=g)
    if v.dim() == 1 and key.endswith("weight"):
        return 1.0 + 0.1 * torch.randn(v.shape, generator=g)
    return 0.1 * torch.randn(v.shape, generator=g)


def main(root: Path) -> None:
    _bare_packages(root)
    from mmkd.PCUMD import PCUMD
    from mmkd.PCUMD_zero_padding_random import PCUMD as PCUMD_random
    from mmkd.Prototype import PrototypeSegmentation
    from mmkd.regularization import RegParameters
    from mmkd.RUMD import RUMD
    from mmkd.RUMD_zero_padding_all import RUMD as RUMD_all
    from semseg.losses import OhemCrossEntropy
    from semseg.models.segformer.seg_block_select_UMD import Seg

    values = {
        "source": "RobustSeg/RobustSeg@ea9add7", "torch": torch.__version__, "shapes": SHAPES,
        "rrm": rrm_cases(RUMD, RUMD_all, RegParameters),
        "hpdm": hpdm_cases(PCUMD, PCUMD_random, PrototypeSegmentation),
        "kd_ohem": kd_ohem_cases(OhemCrossEntropy),
        "model": model_case(Seg),
    }
    OUT.write_text(json.dumps(values) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
