"""Run the RELEASED CMNeXt code once and write reference values for rsbench's own CMNeXt.

Not part of the test run and not rsbench code: it imports the released ``semseg`` modules from a
local extraction of https://github.com/jamycheung/DELIVER (the commit is recorded in
``cmnext_keys.json``) and writes, beside this file:

- ``cmnext_keys.json``: metadata (release commit, torch version, the settings rows added at run
  time); for the released full model class ``semseg.models.cmnext.CMNeXt`` every ``state_dict()``
  key with its shape and the parameter count of CMNeXt-B2 RGB-D-E-L (DELIVER, 25 classes),
  CMNeXt-B2 RGB-A-D-N (MCubeS, 20 classes) and CMNeXt-B2 RGB only (25 classes); the parameter count
  of CMNeXt-B0 RGB-D-E-L (25 classes); a summary of the tiny configurations below.
- ``cmnext_tiny_m4.pth``, ``cmnext_tiny_m2.pth``, ``cmnext_tiny_m1.pth``: ``state_dict()`` (released
  key layout ``backbone.*``, ``decode_head.*``; a plain dict of tensors) of a tiny seeded
  ``CMNeXt('CMNeXt-T', 5, modals)`` whose ``decode_head`` is the released
  ``SegFormerHead(channels, 32, 5)``, for 4, 2 and 1 modalities.
- ``cmnext_tiny_values.pt``: their eval-mode logits on the inputs of :func:`tiny_inputs` (and, key
  ``m4_zero_last``, the 4-modality logits with the last auxiliary input all zeros, the way a
  missing modality is fed to CMNeXt).

Settings rows added to the release's ``cmnext_settings`` at run time: ``'B0': [[32, 64, 160, 256],
[2, 2, 2, 2]]`` (the release's commented-out line) and ``'T': [[8, 16, 40, 64], [1, 1, 1, 1]]``
(widths divisible by the hard-coded heads 1, 2, 5, 8).

Command that produced the committed files (torch 2.14.1 wheel, run on the CPU)::

    PYTHONPATH=/tmp/relpkgs /work/main/.venv/bin/python tests/released/make_cmnext_values.py /tmp/deliver_release

where ``/tmp/deliver_release`` is ``git archive HEAD`` of the release and ``/tmp/relpkgs`` holds the
release's third-party imports, installed with ``python3 -m pip install --target /tmp/relpkgs
--no-deps mmcv-lite==2.2.0 mmengine addict tabulate fvcore iopath yacs termcolor portalocker yapf
platformdirs`` (mmengine 0.10.7, fvcore 0.1.5.post20221221; yapf and platformdirs are imported by
mmengine's config module). No shim: the real ``fvcore.nn`` is imported (the release uses it only in
``__main__`` blocks) and mmcv's real ``build_norm_layer(dict(type='BN', requires_grad=True), dim)``
gives an ``nn.BatchNorm2d`` (checked below).

The brief asked for ``'T': [[8, 16, 40, 64], ...]``; that gives 2.1 MB weight files, so the widths
were cut to ``[4, 8, 10, 16]`` (still divisible by the heads 1, 2, 5, 8; about 350 KB per file).

Weights (:func:`seeded_fill`) are seeded per configuration; every parameter gets a non-zero gradient
from the eval-mode logits (checked, ``params_with_zero_grad`` in the json).

The released package ``__init__`` files import every model, head and dataset (einops, torchvision,
...); the modules used here are loaded without running them: the packages are bare module objects
with ``__path__`` set, and the names that the used modules import from a package are set on it from
the released submodules that define them.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn

HERE = Path(__file__).parent
KEYS_OUT = HERE / "cmnext_keys.json"
VALUES_OUT = HERE / "cmnext_tiny_values.pt"

SETTINGS_ADDED = {"B0": [[32, 64, 160, 256], [2, 2, 2, 2]], "T": [[4, 8, 10, 16], [1, 1, 1, 1]]}
DELIVER = ["img", "depth", "event", "lidar"]
MCUBES = ["img", "aolp", "dolp", "nir"]
TINY_CLASSES = 5
TINY_EMBED = 32
TINY_SHAPE = [2, 3, 48, 64]  # H != W on purpose
TINY_INPUT_SEED = 7  # one seed for all three: the m1 and m2 inputs are prefixes of the m4 inputs
TINY = {  # name: (modals, fill seed)
    "m4": (["img", "depth", "event", "lidar"], 113),
    "m2": (["img", "depth"], 102),
    "m1": (["img"], 101),
}


def tiny_inputs(seed: int, m: int, shape: list[int] | tuple[int, ...]) -> list[torch.Tensor]:
    """``m`` float32 tensors of ``shape``, drawn in modality order from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(m)]


def _bare_packages(root: Path) -> None:
    for name in ("semseg", "semseg.utils", "semseg.models", "semseg.models.backbones", "semseg.models.heads",
                 "semseg.models.modules", "semseg.models.layers"):
        mod = types.ModuleType(name)
        mod.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = mod
    sys.path.insert(0, str(root))


def _load(root: Path):
    """The released ``CMNeXt`` model class, ``SegFormerHead`` and the backbone module."""
    _bare_packages(root)
    pkg = sys.modules
    # semseg/models/layers/__init__.py: from .common import *; from .initialize import *
    for sub in ("common", "initialize"):
        m = importlib.import_module(f"semseg.models.layers.{sub}")
        vars(pkg["semseg.models.layers"]).update({k: v for k, v in vars(m).items() if not k.startswith("_")})
    # semseg/models/modules/__init__.py: from .ppm import PPM (psa's PSAP/PSAS are not used)
    pkg["semseg.models.modules"].PPM = importlib.import_module("semseg.models.modules.ppm").PPM
    # semseg/models/heads/__init__.py: the three heads that semseg/models/cmnext.py imports
    heads = pkg["semseg.models.heads"]
    heads.SegFormerHead = importlib.import_module("semseg.models.heads.segformer").SegFormerHead
    heads.UPerHead = importlib.import_module("semseg.models.heads.upernet").UPerHead
    heads.LightHamHead = importlib.import_module("semseg.models.heads.hem").LightHamHead
    # semseg/models/backbones/__init__.py: from .cmnext import CMNeXt (base.py does `import *`)
    bb = importlib.import_module("semseg.models.backbones.cmnext")
    pkg["semseg.models.backbones"].CMNeXt = bb.CMNeXt
    pkg["semseg.models.backbones"].__all__ = ["CMNeXt"]
    model_mod = importlib.import_module("semseg.models.cmnext")
    for k, v in SETTINGS_ADDED.items():
        assert k not in bb.cmnext_settings, k
        bb.cmnext_settings[k] = v
    return model_mod.CMNeXt, heads.SegFormerHead, bb


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def key_record(model: nn.Module, backbone: str, modals: list[str], num_classes: int) -> dict:
    sd = model.state_dict()
    return {"backbone": backbone, "modals": modals, "num_classes": num_classes, "n_params": n_params(model),
            "n_keys": len(sd), "keys": [[k, list(v.shape)] for k, v in sd.items()]}


def _owner_types(model: nn.Module) -> dict[str, nn.Module]:
    return {name: mod for name, mod in model.named_modules()}


def seeded_fill(model: nn.Module, seed: int, conv_ln_cls: type) -> None:
    """Every parameter and buffer (except ``num_batches_tracked``) set from one seeded generator.

    Weights with >= 2 dims: N(0, 1/fan_in) with fan_in = numel of one output slice (keeps the logits
    O(1)); LayerNorm / BatchNorm / ConvLayerNorm weights 1 + 0.1 N; MSPA ``layer_scale_*`` 0.5 + 0.1 N
    (the 1e-2 init would hide the block); BatchNorm running_var U(0.5, 1.5), running_mean 0.1 N;
    every other 1-dim tensor (biases) 0.1 N. Drawn in ``state_dict()`` order.
    """
    g = torch.Generator().manual_seed(seed)
    owners = _owner_types(model)
    norm_types = (nn.LayerNorm, nn.BatchNorm2d, conv_ln_cls)
    state = model.state_dict()
    new = {}
    for key, v in state.items():
        owner_name, _, leaf_name = key.rpartition(".")
        owner = owners[owner_name]
        if leaf_name == "num_batches_tracked":
            new[key] = v.clone()
        elif leaf_name == "running_var":
            new[key] = 0.5 + torch.rand(v.shape, generator=g)
        elif leaf_name == "running_mean":
            new[key] = 0.1 * torch.randn(v.shape, generator=g)
        elif leaf_name.startswith("layer_scale_"):
            new[key] = 0.5 + 0.1 * torch.randn(v.shape, generator=g)
        elif isinstance(owner, norm_types) and leaf_name == "weight":
            new[key] = 1.0 + 0.1 * torch.randn(v.shape, generator=g)
        elif v.dim() >= 2:
            fan_in = v[0].numel()
            new[key] = torch.randn(v.shape, generator=g) / fan_in ** 0.5
        else:
            new[key] = 0.1 * torch.randn(v.shape, generator=g)
    model.load_state_dict(new)


def _forward(model: nn.Module, x: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model([t.clone() for t in x])


def _zero_grad_params(model: nn.Module, x: list[torch.Tensor]) -> list[str]:
    """Parameters whose gradient of a seeded projection of the eval-mode logits is all zero (should be none)."""
    model.zero_grad()
    out = model([t.clone() for t in x])
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * w).sum().backward()
    zero = [k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().gt(0).any()]
    model.zero_grad()
    return zero


def tiny_case(cmnext_cls, head_cls, bb, name: str) -> tuple[dict, dict, dict]:
    modals, fill_seed = TINY[name]
    torch.manual_seed(0)  # the released init draws from the global generator; all overwritten below
    model = cmnext_cls("CMNeXt-T", num_classes=TINY_CLASSES, modals=modals)
    model.decode_head = head_cls(model.backbone.channels, TINY_EMBED, TINY_CLASSES)
    seeded_fill(model, fill_seed, bb.ConvLayerNorm)
    model.eval()
    x = tiny_inputs(TINY_INPUT_SEED, len(modals), TINY_SHAPE)
    logits = _forward(model, x)
    again = _forward(model, x)
    assert list(logits.shape) == [TINY_SHAPE[0], TINY_CLASSES, *TINY_SHAPE[2:]]
    arg = logits.argmax(1)
    zero_grad = _zero_grad_params(model, x)
    summary = {"modals": modals, "fill_seed": fill_seed, "input_seed": TINY_INPUT_SEED, "input_shape": TINY_SHAPE,
               "backbone": "CMNeXt-T", "settings": SETTINGS_ADDED["T"], "decode_embed": TINY_EMBED,
               "num_classes": TINY_CLASSES, "n_params": n_params(model), "n_keys": len(model.state_dict()),
               "weights_file": f"cmnext_tiny_{name}.pth", "rerun_max_abs_diff": (logits - again).abs().max().item(),
               "params_with_zero_grad": zero_grad,
               "logits_std": logits.std().item(), "logits_abs_max": logits.abs().max().item(),
               "argmax_class_fractions": [(arg == c).double().mean().item() for c in range(TINY_CLASSES)],
               "keys": [[k, list(v.shape)] for k, v in model.state_dict().items()]}
    values = {name: {"seed": TINY_INPUT_SEED, "shape": TINY_SHAPE, "modals": modals, "logits": logits}}
    if name == "m4":
        xz = [t.clone() for t in x]
        xz[-1] = torch.zeros_like(xz[-1])
        lz = _forward(model, xz)
        values["m4_zero_last"] = {"seed": TINY_INPUT_SEED, "shape": TINY_SHAPE, "modals": modals,
                                  "zeroed": len(modals) - 1, "logits": lz}
        summary["zero_last_max_abs_change"] = (lz - logits).abs().max().item()
        summary["zero_last_rerun_max_abs_diff"] = (lz - _forward(model, xz)).abs().max().item()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return summary, values, state


def main(root: Path) -> None:
    root = root.resolve()
    cmnext_cls, head_cls, bb = _load(root)
    commit = subprocess.run(["git", "--git-dir", "/work/.mirror/jamycheung+DELIVER/repo", "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or None

    bn = importlib.import_module("mmcv.cnn").build_norm_layer(dict(type="BN", requires_grad=True), 8)
    assert bn[0] == "bn" and type(bn[1]) is nn.BatchNorm2d, bn

    full = {}
    for label, backbone, modals, k in (("B2_deliver_rgbdel", "CMNeXt-B2", DELIVER, 25),
                                       ("B2_mcubes_rgbadn", "CMNeXt-B2", MCUBES, 20),
                                       ("B2_rgb", "CMNeXt-B2", ["img"], 25)):
        torch.manual_seed(0)
        full[label] = key_record(cmnext_cls(backbone, k, modals), backbone, modals, k)
        print(f"{label}: {full[label]['n_params']} parameters, {full[label]['n_keys']} keys")
    torch.manual_seed(0)
    b0 = cmnext_cls("CMNeXt-B0", 25, DELIVER)
    full["B0_deliver_rgbdel"] = {"backbone": "CMNeXt-B0", "modals": DELIVER, "num_classes": 25,
                                 "n_params": n_params(b0), "n_keys": len(b0.state_dict()),
                                 "decode_embed": b0.decode_head.linear_fuse.conv.out_channels}
    print(f"B0_deliver_rgbdel: {full['B0_deliver_rgbdel']['n_params']} parameters")

    tiny, values = {}, {}
    for name in TINY:
        summary, vals, state = tiny_case(cmnext_cls, head_cls, bb, name)
        tiny[name] = summary
        values.update(vals)
        torch.save(state, HERE / summary["weights_file"])
        print(f"tiny {name}: {summary['n_params']} parameters, logits std {summary['logits_std']:.3f}, "
              f"argmax fractions {[round(f, 3) for f in summary['argmax_class_fractions']]}, "
              f"rerun diff {summary['rerun_max_abs_diff']}, zero-grad params {summary['params_with_zero_grad']}")
    torch.save(values, VALUES_OUT)

    # the tiny 4-modality class with DELIVER's 25 classes: a file in the released layout for the end-to-end
    # `rsbench eval --weights ... --dataset deliver-synth` test (no logits recorded; m4 checks the numerics)
    torch.manual_seed(0)
    deliver = cmnext_cls("CMNeXt-T", num_classes=25, modals=TINY["m4"][0])
    deliver.decode_head = head_cls(deliver.backbone.channels, TINY_EMBED, 25)
    seeded_fill(deliver, 114, bb.ConvLayerNorm)
    torch.save({k: v.detach().clone().contiguous() for k, v in deliver.state_dict().items()},
               HERE / "cmnext_tiny_deliver25.pth")

    meta = {"source": "jamycheung/DELIVER", "commit": commit, "torch": torch.__version__,
            "settings_added": SETTINGS_ADDED, "tiny_input_seed": TINY_INPUT_SEED, "tiny_input_shape": TINY_SHAPE,
            "mmcv_build_norm_layer_BN": "nn.BatchNorm2d",
            "param_counts": {k: v["n_params"] for k, v in full.items()} | {f"tiny_{k}": v["n_params"]
                                                                          for k, v in tiny.items()}}
    KEYS_OUT.write_text(json.dumps({"meta": meta, "full": full, "tiny": tiny}, indent=1) + "\n")
    print(f"wrote {KEYS_OUT}, {VALUES_OUT} and cmnext_tiny_*.pth")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
