"""The model contract, over every registered model (timm's ``tests/test_models.py`` habit).

Every registered model builds (the big variants on the meta device), declares capabilities that its
factory already announces, and, for the small variants: gives logits of the right shape for every
declared fill, refuses the fills it does not declare before any compute, survives a state_dict round
trip, gives the ordinary forward through every fast path it declares (encoded-once features, the
folded head, per-stage features), and is scored by the protocol engine with the fast path equal to
the naive one.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from rsbench.errors import ConfigError
from rsbench.models import MODELS, create_model, list_models
from rsbench.models.contract import UNDECLARED, Capabilities, capabilities_of, factory_capabilities
from rsbench.protocols.engine import run_protocol
from tests.conftest import TINY_SYNTH

MODS = ("rgb", "depth", "event", "lidar")
SMALL = [n for n in list_models() if n.endswith("_test")]


def _model(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, modalities=MODS, num_classes=5, **kw).eval()


def _inputs(b: int = 2, h: int = 48, w: int = 64, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(b, 3, h, w, generator=g) for n in MODS}


def test_every_architecture_has_a_small_variant():
    archs = {getattr(MODELS.get(n), "model_class", None) for n in list_models()}
    small = {getattr(MODELS.get(n), "model_class", None) for n in SMALL}
    assert archs == small and len(archs) >= 2


@pytest.mark.parametrize("name", list_models())
def test_builds_and_declares_what_its_factory_announces(name):
    kw = {"backbone": "resnet18"} if name == "segformer_timm" else {}
    with torch.device("meta"):
        model = create_model(name, modalities=MODS, num_classes=5, **kw)
    caps = capabilities_of(model)
    assert caps is not UNDECLARED
    assert factory_capabilities(MODELS.get(name)) == caps  # known before building: cards are checked with it
    assert tuple(model.modalities) == MODS


@pytest.mark.parametrize("name", SMALL)
def test_forward_shapes_for_every_declared_fill_and_refusal_of_the_others(name):
    model, x = _model(name), _inputs()
    caps = capabilities_of(model)
    present = torch.tensor([[True, False, True, False], [False, True, True, True]])
    with torch.no_grad():
        for fill in caps.fills:
            out = model(x, present, fill=fill)
            assert out.shape == (2, 5, 48, 64) and torch.isfinite(out).all()
    for fill in set(("drop", "zero")) - set(caps.fills):
        with pytest.raises(ConfigError, match=f"supports fill {caps.fills[0]} only"):
            model(x, present, fill=fill)


@pytest.mark.parametrize("name", SMALL)
def test_absent_inputs_do_not_reach_the_output(name):
    """Whatever an absent modality's input holds, the logits are the same (zero fill: it becomes zeros)."""
    model, x = _model(name), _inputs()
    present = torch.tensor([[True, False, True, True], [True, True, False, True]])
    noisy = {n: v.clone() for n, v in x.items()}
    noisy["depth"][0] += 100.0
    noisy["event"][1] -= 50.0
    with torch.no_grad():
        for fill in capabilities_of(model).fills:
            torch.testing.assert_close(model(x, present, fill=fill), model(noisy, present, fill=fill))
    if "zero" in capabilities_of(model).fills:
        zeroed = {n: v.clone() for n, v in x.items()}
        zeroed["depth"][0] = 0
        zeroed["event"][1] = 0
        with torch.no_grad():
            torch.testing.assert_close(model(x, present, fill="zero"), model(zeroed, fill="zero"))


@pytest.mark.parametrize("name", SMALL)
def test_state_dict_round_trip(name, tmp_path):
    src, x = _model(name), _inputs()
    torch.save(src.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(123)
    dst = create_model(name, modalities=MODS, num_classes=5).eval()
    dst.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


@pytest.mark.parametrize("name", SMALL)
def test_declared_fast_paths_equal_the_forward(name):
    model, x = _model(name), _inputs()
    caps = capabilities_of(model)
    with torch.no_grad():
        for fill, keep in itertools.product(caps.fills, [("rgb",), ("depth", "lidar"), MODS]):
            want = model(x, list(keep), fill=fill)
            if caps.features:
                logits, feats = model.forward_features(x, list(keep), fill=fill)
                torch.testing.assert_close(logits, want)
                assert len(feats) == 4 and all(f.shape[:2] == (2, len(MODS)) for f in feats)
            if caps.separable:
                inputs = x if fill == "drop" else {n: v if n in keep else torch.zeros_like(v) for n, v in x.items()}
                got = model.fuse_decode(model.encode(inputs), list(keep), (48, 64), fill=fill)
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        if caps.separable:
            assert model.folded_head() is not None  # eval mode: the folded subset evaluation is offered


@pytest.mark.parametrize("name", SMALL)
def test_engine_fast_path_equals_the_naive_path(name, synth_cache):
    from rsbench.data import create_dataset

    ds = create_dataset("deliver-synth", split="val", synth=TINY_SYNTH)
    model = create_model(name, modalities=ds.modalities, num_classes=ds.info.num_classes).eval()
    fill = capabilities_of(model).fills[-1]
    fast = run_protocol(model, ds, "emm", fill=fill, batch_size=2, cache=True)
    naive = run_protocol(model, ds, "emm", fill=fill, batch_size=2, cache=False)
    assert fast.subsets.keys() == naive.subsets.keys() and len(fast.subsets) == 15
    for key in fast.subsets:
        assert fast.subsets[key]["miou"] == pytest.approx(naive.subsets[key]["miou"], abs=1e-6)


@pytest.mark.parametrize("name", SMALL)
def test_engine_refuses_an_undeclared_fill_before_reading_data(name):
    class NoData(torch.utils.data.Dataset):
        modalities = MODS

        def __len__(self) -> int:
            return 1

        def __getitem__(self, i):  # noqa: ANN204
            raise AssertionError("data was read")

    model = _model(name)
    undeclared = set(("drop", "zero")) - set(capabilities_of(model).fills)
    for fill in undeclared:
        with pytest.raises(ConfigError, match=f"fill {fill!r}"):
            run_protocol(model, NoData(), "emm", fill=fill)


class _Ensemble(torch.nn.Module):
    """A model with several outputs that declares which is scored (as GeminiFusion's ensemble will)."""

    capabilities = Capabilities(fills=("zero",), outputs=("ensemble", "rgb_branch"), scored="ensemble")
    modalities = MODS

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Conv2d(3, 25, 1)
        self.b = torch.nn.Conv2d(3, 25, 1)

    def branches(self, modalities, present):
        x = {n: v for n, v in modalities.items()}
        return self.a(x["rgb"]), self.b(x["depth"] + x["lidar"])

    def forward(self, modalities, present=None, fill=None):
        rgb, other = self.branches(modalities, present)
        return {"ensemble": 0.5 * (rgb + other), "rgb_branch": rgb}


def test_the_declared_output_of_a_model_with_several_is_scored(synth_cache):
    from rsbench.data import create_dataset

    ds = create_dataset("deliver-synth", split="val", synth=TINY_SYNTH)
    model = _Ensemble().eval()
    got = run_protocol(model, ds, "full", batch_size=2)

    class Scored(torch.nn.Module):  # the ensemble tensor itself, through the plain path
        modalities = MODS

        def forward(self, modalities, present=None):
            return model(modalities)["ensemble"]

    want = run_protocol(Scored(), ds, "full", batch_size=2)
    assert got.subsets == want.subsets
    with pytest.raises(ValueError, match="scored output 'mean' is not among"):
        Capabilities(outputs=("ensemble",), scored="mean")
