"""Protocol cards and the engine: RMM and noise seeded per sample, summaries by hand, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rsbench.cli import app
from rsbench.data import create_dataset
from rsbench.errors import ConfigError
from rsbench.evaluation import evaluate
from rsbench.models import create_model
from rsbench.protocols import builtin_protocols, conditions, importance, load_protocol, resolve_protocols
from rsbench.protocols.perturb import mix, noise, rmm
from tests.conftest import TINY_SYNTH

SHIPPED = ["full", "emm", "emm-drop", "rmm-25", "rmm-50", "rmm-75", "noise-low", "noise-mid", "noise-high",
           "corruptions"]


def test_shipped_cards_and_aliases() -> None:
    assert builtin_protocols() == SHIPPED
    assert load_protocol("all-subsets") == load_protocol("emm")
    assert [c.name for c in resolve_protocols("all")] == SHIPPED
    assert (load_protocol("rmm-50").rate, load_protocol("noise-high").density, load_protocol("noise-high").std) == (
        0.5, 0.2, 0.5)
    assert load_protocol("emm-drop").fill == "drop" and load_protocol("emm").fill == "zero"
    names = ("a", "b", "c")
    assert len(conditions(load_protocol("emm"), names)) == 7
    rmm_conds = conditions(load_protocol("rmm-25"), names)
    assert all(c.present == names for c in rmm_conds)  # every input fed; the missing ones masked
    assert {ch.modality for ch in rmm_conds[-1].changes} == {"a", "b"} and rmm_conds[-1].key == "c"


@pytest.mark.parametrize(("text", "message"), [
    ("kind: subsets\nfil: zero\n", "unknown key 'fil'"),
    ("kind: subsets\nseed: two\n", "expected an integer"),
    ("kind: everything\n", "is not one of"),
    ("kind: rmm\n", "rmm needs 'rate'"),
    ("kind: noise\ndensity: 2\nstd: 0.1\n", "density"),
    ("kind: [subsets\n", "not valid YAML"),
])
def test_bad_cards_are_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_protocol(str(path))


def test_a_user_card_by_path(tmp_path: Path) -> None:
    path = tmp_path / "rmm-90.yaml"
    path.write_text("description: heavier RMM\nkind: rmm\nrate: 0.9\nseed: 3\n")
    card = load_protocol(str(path))
    assert (card.name, card.rate, card.seed, card.fill) == ("rmm-90", 0.9, 3, "zero")


def test_draws_depend_on_sample_and_modality_only() -> None:
    card = load_protocol("rmm-50")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 8, 8, generator=g)
    batch = rmm(x, [10, 11, 12, 13], 2, card)
    alone = rmm(x[2:3], [12], 2, card)
    assert torch.equal(batch[2:3], alone)  # batch position and size do not matter
    assert not torch.equal(rmm(x[2:3], [12], 1, card), alone)  # another modality draws another mask
    frac = (batch == 0).float().mean().item()
    assert 0.4 < frac < 0.6
    assert mix(1, 2, 3) != mix(1, 3, 2) and mix(0) == mix(0)


def test_noise_uses_each_sample_own_range_and_spares_events() -> None:
    card = load_protocol("noise-high")
    x = torch.stack([torch.linspace(0, 1, 48).view(3, 4, 4), 10 * torch.linspace(-1, 1, 48).view(3, 4, 4)])
    from dataclasses import replace

    sp_only = replace(card, density=1.0, std=0.0)
    y = noise(x, [0, 1], 0, "rgb", sp_only)
    for b in range(2):  # density 1: every element becomes that sample's max or min
        assert set(y[b].unique().tolist()) <= {x[b].max().item(), x[b].min().item()}
    gauss = replace(card, density=0.0, std=0.5)
    assert torch.equal(noise(x, [0, 1], 0, "event", gauss), x)
    assert (noise(x, [0, 1], 0, "depth", gauss) - x).std().item() == pytest.approx(0.5, rel=0.3)


def test_importance_by_hand() -> None:
    per = {"a+b": 60.0, "a": 40.0, "b": 10.0}
    imp = importance(per, ["a", "b"])
    assert imp == {"importance/a": 50.0, "importance/b": 20.0}  # a+b - b, a+b - a


@pytest.fixture(scope="module")
def tiny_model_and_data():
    ds = create_dataset("deliver-synth", split="val", synth=TINY_SYNTH)
    torch.manual_seed(2)
    model = create_model("segformer_mit_test", modalities=ds.modalities, num_classes=ds.info.num_classes,
                         embed_dim=16).eval()
    return model, ds


@pytest.mark.parametrize("protocol", ["rmm-50", "noise-mid", "corruptions"])
def test_random_protocols_do_not_depend_on_batch_size_or_workers(tiny_model_and_data, protocol: str,
                                                                 tmp_path: Path) -> None:
    model, ds = tiny_model_and_data
    if protocol == "corruptions":  # a few random ones of each sensor, to keep the test short
        path = tmp_path / "some-corruptions.yaml"
        path.write_text("kind: corruptions\nseverities: [3]\n"
                        "corruptions: [gaussian_noise, glass_blur, depth_holes, event_dropout, lidar_sparsify]\n")
        protocol = str(path)
    ref = evaluate(model, ds, protocol, batch_size=1)
    assert evaluate(model, ds, protocol, batch_size=4).subsets == ref.subsets
    assert evaluate(model, ds, protocol, batch_size=4, num_workers=2).subsets == ref.subsets


def test_every_protocol_has_the_common_summary_keys(tiny_model_and_data) -> None:
    model, ds = tiny_model_and_data
    for card in resolve_protocols("all"):
        summary = evaluate(model, ds, card, batch_size=4).summary
        assert {"full", "avg", "worst", "relative"} <= set(summary), card.name
        if card.kind in ("subsets", "rmm"):
            assert {"e0.2", "e0.1", "e0.05", *(f"importance/{m}" for m in ds.modalities)} <= set(summary)


def test_wrong_class_count_is_refused(tiny_model_and_data) -> None:
    model, ds = tiny_model_and_data

    class TenClasses(torch.nn.Module):
        def forward(self, modalities, present):
            x = next(iter(modalities.values()))
            return torch.zeros(x.shape[0], 10, *x.shape[-2:])

    with pytest.raises(ConfigError, match="10 classes|expected"):
        evaluate(TenClasses(), ds, "full")


def test_cli_runs_every_protocol_into_one_folder(tmp_path: Path, tiny_model_and_data) -> None:
    from rsbench.models.checkpoint import to_official_state_dict

    model, ds = tiny_model_and_data
    weights = tmp_path / "tiny.pth"
    torch.save(to_official_state_dict(model), weights)
    out = tmp_path / "records"
    args = ["eval", "--weights", str(weights), "--model", "segformer_mit_test", "--embed-dim", "16",
            "--dataset", "deliver-synth", "--protocol", "all", "--out", str(out), "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    records = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert sorted(records) == sorted(SHIPPED)
    assert records["rmm-25"]["protocol_card"]["rate"] == 0.25 and len(records["rmm-25"]["conditions"]) == 15
    bad = CliRunner().invoke(app, [*args[:-4], "--protocol", "rmm-60", "--out", str(tmp_path / "x.json")])
    assert bad.exit_code != 0 and "unknown protocol" in bad.output and not (tmp_path / "x.json").exists()


def test_folded_logits_equal_the_ordinary_forward_on_a_trained_checkpoint(tmp_path: Path) -> None:
    """After training the BatchNorm statistics and biases are not at their init: the fold must still be exact."""
    from rsbench.cards import load_card
    from rsbench.data.transforms import collate
    from rsbench.models.folded import FoldedHead
    from rsbench.protocols.engine import _Batch, _FoldedWalk, _naive_logits
    from rsbench.runs import model_from_checkpoint
    from rsbench.training import train
    from tests.conftest import write_card

    card = load_card(str(write_card(tmp_path / "t.yaml")), "quick", {"iters": 6})
    model, _ = model_from_checkpoint(train(card, "deliver-synth", tmp_path / "run", progress=False).checkpoint)
    bn = model.head.linear_fuse.bn
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    ds = create_dataset("deliver-synth", split="val", synth=TINY_SYNTH)
    sample = collate([ds[i] for i in range(3)])
    names = list(ds.modalities)
    folded = FoldedHead(model)
    worst = 0.0
    with torch.no_grad():
        for protocol in ("emm", "emm-drop", "rmm-50", "noise-low", "corruptions"):
            card_p = load_protocol(protocol)
            batch = _Batch(model, sample["modalities"], [0, 1, 2], names, card_p, None)
            conds = conditions(card_p, names)
            for cond, logits in _FoldedWalk(folded, conds, names, card_p.fill).run(batch, conds):
                worst = max(worst, (logits - _naive_logits(batch, cond, card_p.fill)).abs().max().item())
    assert worst <= 1e-4


def test_every_package_is_listed_for_the_wheel() -> None:
    """pyproject lists packages explicitly (the card folders are mapped into the package); none may be missed."""
    import re

    root = Path(__file__).resolve().parents[1]
    block = re.search(r"^packages = \[(.*?)\]", (root / "pyproject.toml").read_text(), re.M | re.S).group(1)
    listed = set(re.findall(r'"([\w.]+)"', block))
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "rsbench").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    assert not any(p.is_symlink() for p in (root / "rsbench").rglob("*"))


def test_eval_plot_and_plot_command_write_figures(tmp_path: Path) -> None:
    from rsbench.cards import load_card
    from rsbench.training import train
    from tests.conftest import write_card

    card = load_card(str(write_card(tmp_path / "t.yaml")), "quick", {"iters": 2})
    ckpt = train(card, "deliver-synth", tmp_path / "run", progress=False).checkpoint
    user = tmp_path / "some-corruptions.yaml"
    user.write_text("kind: corruptions\nseverities: [1, 3]\ncorruptions: [depth_holes, event_dropout, fog]\n")
    res = CliRunner().invoke(app, ["eval", "--checkpoint", str(ckpt), "--protocol", f"emm,{user}",
                                   "--out", str(tmp_path / "rec"), "--plot", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    pngs = sorted(p.name for p in (tmp_path / "fig").glob("*.png"))
    assert pngs == ["emm-predictions.png", "emm.png", "some-corruptions-predictions.png", "some-corruptions.png"]
    assert all((tmp_path / "fig" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    again = CliRunner().invoke(app, ["plot", str(tmp_path / "rec" / "emm.json"), "--out", str(tmp_path / "p2")])
    assert again.exit_code == 0 and (tmp_path / "p2" / "emm.png").stat().st_size > 1000
    bad = CliRunner().invoke(app, ["plot", str(tmp_path / "nothing.json"), "--out", str(tmp_path / "p3")])
    assert bad.exit_code != 0 and not (tmp_path / "p3").exists()


def test_checkpoint_on_another_modality_set_is_refused_without_a_record(tmp_path: Path) -> None:
    from rsbench.cards import load_card
    from rsbench.training import train
    from tests.conftest import write_card

    card = load_card(str(write_card(tmp_path / "t.yaml")), "quick", {"iters": 1})
    ckpt = train(card, "deliver-synth", tmp_path / "run", progress=False).checkpoint
    out = tmp_path / "rec.json"
    for other in ("mcubes-synth", "muses-synth"):
        res = CliRunner().invoke(app, ["eval", "--checkpoint", str(ckpt), "--dataset", other, "--protocol", "emm",
                                       "--out", str(out)])
        assert res.exit_code != 0 and res.output.startswith("rsbench: error:"), res.output
        assert len(res.output.strip().splitlines()) == 1 and not out.exists()


def test_walk_order_changes_one_slot_per_step_over_subsets() -> None:
    from rsbench.models.folded import walk_order
    from rsbench.protocols.engine import _choices

    names = ("a", "b", "c", "d")
    choices = [_choices(c, names) for c in conditions(load_protocol("emm"), names)]
    order = walk_order(choices)
    assert sorted(order) == list(range(15))
    pairs = zip(order, order[1:], strict=False)
    steps = [sum(x != y for x, y in zip(choices[i], choices[j], strict=True)) for i, j in pairs]
    assert sum(steps) <= 16 and max(steps) <= 2
