"""Student stage: every loss combination trains from a frozen teacher; CLI teacher reuse; resume; cards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rsbench.cards import builtin_cards, load_card
from rsbench.cli import app
from rsbench.losses import create_loss
from rsbench.runs import build_model, load_checkpoint, model_from_checkpoint
from rsbench.training import TrainStep, build_losses, train
from rsbench.training.step import StudentForward
from tests.conftest import cache_env, write_card

STUDENT = {"stage": "student", "modality_dropout": True, "description": "tiny test student"}
COMBOS = {
    "moddrop": {"ohem_ce": 1.0},
    "kd": {"ohem_ce": 1.0, "kd": 50.0},
    "robustseg": {"ohem_ce": 1.0, "kd": 50.0, "hpdm": 100.0, "rrm": 12.0},
    "no-hpdm": {"ohem_ce": 1.0, "kd": 50.0, "rrm": 12.0},
    "no-rrm": {"ohem_ce": 1.0, "kd": 50.0, "hpdm": 100.0},
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory, synth_cache: Path) -> Path:
    """A tiny teacher checkpoint (2 iterations), shared by the module's tests."""
    with cache_env(synth_cache):
        folder = tmp_path_factory.mktemp("teacher")
        card = load_card(str(write_card(folder / "teacher.yaml")), "quick", {"iters": 2})
        return train(card, "deliver-synth", folder / "run", progress=False).checkpoint


def _student(tmp_path: Path, losses: dict[str, float], iters: int = 2):
    path = write_card(tmp_path / "student.yaml", **STUDENT, losses=losses)
    return load_card(str(path), "quick", {"iters": iters})


@pytest.mark.parametrize("combo", list(COMBOS))
def test_student_trains_and_leaves_the_teacher_untouched(tmp_path: Path, tiny_teacher: Path, combo: str) -> None:
    before = _digest(tiny_teacher)
    card = _student(tmp_path, COMBOS[combo])
    res = train(card, "deliver-synth", tmp_path / "run", teacher=tiny_teacher, progress=False)
    ckpt = load_checkpoint(res.checkpoint)
    torch.manual_seed(card.seed)  # the loop's initialisation
    a = build_model(card, tuple(ckpt["modalities"]), int(ckpt["num_classes"])).state_dict()
    b = ckpt["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert all(torch.isfinite(v).all() for v in b.values() if v.is_floating_point())
    assert _digest(tiny_teacher) == before


@pytest.mark.parametrize("missing", ["drop", "zero"])
def test_teacher_is_frozen_and_feature_losses_give_finite_grads(tiny_teacher: Path, missing: str) -> None:
    """One hand-made student step with every modality subset: no teacher grads, finite student grads."""
    teacher, _ = model_from_checkpoint(tiny_teacher)
    teacher.requires_grad_(False)
    student, _ = model_from_checkpoint(tiny_teacher)
    student = student.train().requires_grad_(True)
    student.fill = missing
    k = int(load_checkpoint(tiny_teacher)["num_classes"])
    losses = {name: create_loss(name, num_classes=k) if name == "hpdm" else create_loss(name)
              for name in ("ohem_ce", "kd", "hpdm", "rrm")}
    for loss in losses.values():
        if hasattr(loss, "pairing"):
            loss.pairing = "random"  # repeats allowed: exercises pairs that all land on dropped slots
    names = student.modalities
    step = TrainStep(StudentForward(student), teacher, losses, dict.fromkeys(losses, 1.0), fill=missing,
                     modality_dropout=False, num_modalities=len(names), seed=0)
    for keep in (0b0001, 0b1010, 0b1111):  # one, two, all kept (bit i = modality i)
        present = torch.tensor([bool(keep >> i & 1) for i in range(len(names))])[None]
        mods = {n: torch.randn(1, 3, 32, 32) for n in names}
        out = step(mods, torch.randint(0, 5, (1, 32, 32)), present=present)
        terms = {k: v for k, v in out.items() if k != "loss"}
        student.zero_grad()
        out["loss"].backward()
        assert set(terms) == set(losses) and all(torch.isfinite(t) for t in terms.values()), terms
        assert all(p.grad is None for p in teacher.parameters())
        assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
    assert not teacher.training


@pytest.mark.parametrize(("card_name", "expected_draws"), [("robustseg-paper", 1), ("robustseg-zero", 2)])
def test_pair_tables_drawn_once_per_scheme(tiny_teacher: Path, monkeypatch: pytest.MonkeyPatch, card_name: str,
                                           expected_draws: int) -> None:
    """The paper's reading shares one permutation between HPDM and RRM; the zero recipe draws its own."""
    import rsbench.training.step as engine

    card = load_card(card_name, "quick")
    losses = {k: v for k, v in build_losses(card, 5).items() if k in ("hpdm", "rrm")}
    draws = []
    real = engine.draw_pair_table
    monkeypatch.setattr(engine, "draw_pair_table", lambda *a, **k: draws.append(real(*a, **k)) or draws[-1])
    teacher, _ = model_from_checkpoint(tiny_teacher)
    step = TrainStep(StudentForward(teacher), teacher, losses, card.weights, fill=card.fill, modality_dropout=False,
                     num_modalities=len(teacher.modalities), seed=3)
    with torch.no_grad():
        out = step({n: torch.randn(2, 3, 32, 32) for n in teacher.modalities}, torch.randint(0, 5, (2, 32, 32)))
    terms = {k for k in out if k != "loss"}
    assert len(draws) == expected_draws and terms == {"hpdm", "rrm"}
    m = len(teacher.modalities)
    if card_name == "robustseg-paper":  # one permutation for every sample and stage
        assert draws[0].shape == (2, 4, m) and sorted(draws[0][0, 0].tolist()) == list(range(m))
        assert bool((draws[0] == draws[0][:1, :1]).all())
    else:  # HPDM: a fresh draw per (sample, stage, teacher modality); RRM: slot to slot
        assert draws[0].shape == (2, 4, m) and len({tuple(r.tolist()) for r in draws[0].flatten(0, 1)}) > 1
        assert torch.equal(draws[1], torch.arange(m).expand(2, 4, m))


def test_student_resume_gives_identical_weights(tmp_path: Path, tiny_teacher: Path) -> None:
    card = _student(tmp_path, COMBOS["robustseg"], iters=4)
    full = train(card, "deliver-synth", tmp_path / "full", teacher=tiny_teacher, progress=False)
    train(card, "deliver-synth", tmp_path / "split", teacher=tiny_teacher, progress=False, stop_after=2)
    resumed = train(card, "deliver-synth", tmp_path / "split", teacher=tiny_teacher, progress=False, resume=True)
    a, b = load_checkpoint(full.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_trains_the_teacher_then_reuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    quick = {**yaml.safe_load(write_card(tmp_path / "base.yaml").read_text())["profiles"]["quick"], "iters": 2}
    teacher = write_card(tmp_path / "tinyteacher.yaml", profiles={"quick": quick})
    student = write_card(tmp_path / "tinystudent.yaml", **STUDENT, teacher=str(teacher),
                         losses=COMBOS["robustseg"], profiles={"quick": quick})
    runner = CliRunner()
    args = ["train", str(student), "--dataset", "deliver-synth", "--profile", "quick"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "stage 1" in first.output and "reusing teacher" not in first.output
    t_ckpt = tmp_path / "runs" / "deliver-synth" / "tinyteacher-quick" / "last.pt"
    assert load_checkpoint(t_ckpt)["complete"]
    before = _digest(t_ckpt)
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "again")])
    assert second.exit_code == 0, second.output
    assert "reusing teacher" in second.output and "stage 1" not in second.output
    assert _digest(t_ckpt) == before
    assert (tmp_path / "again" / "last.pt").is_file()


STUDENT_CARDS = ("moddrop", "kd", "robustseg", "robustseg-no-hpdm", "robustseg-no-rrm", "robustseg-paper")


@pytest.mark.parametrize("name", builtin_cards())
def test_every_shipped_card_loads_in_both_profiles(name: str) -> None:
    paper, quick = load_card(name, "paper"), load_card(name, "quick")
    assert paper.model == "segformer_mit_b0" and paper.embed_dim == 768
    if paper.stage == "student":
        assert paper.teacher in builtin_cards()
        assert load_card(paper.teacher, "paper").stage == "teacher"
        t_quick = load_card(paper.teacher, "quick")
        assert (quick.model, quick.embed_dim) == (t_quick.model, t_quick.embed_dim)
        assert paper.modality_dropout and quick.modality_dropout


def test_student_cards_ship_with_the_published_settings() -> None:
    assert set(STUDENT_CARDS) <= set(builtin_cards())
    for name in STUDENT_CARDS:
        card = load_card(name, "paper")
        assert card.stage == "student" and card.teacher == "teacher" and card.fill == "drop"
        assert (card.crop, card.batch_size, card.eval_size) == (256, 16, 256)
        assert abs(card.iters - 200 * 3983 / 16) < 50 and card.warmup_iters == 2490
    card_of_combo = {"no-hpdm": "robustseg-no-hpdm", "no-rrm": "robustseg-no-rrm"}
    for combo, losses in COMBOS.items():
        assert load_card(card_of_combo.get(combo, combo), "quick").weights == losses
    rs = load_card("robustseg", "paper")  # the released main recipe
    assert rs.loss_options("hpdm") == {"pairing": "same", "norm": "count_squared", "ignore_index": 255}
    assert rs.loss_options("rrm") == {"pairing": "same", "form": "released", "noise_std": "pixel", "axis": "height",
                                      "lam": 1e-5, "n_samples": 10, "eps": 1e-12}
    assert rs.loss_options("kd") == {"temperature": 1.0} and rs.loss_options("ohem_ce")["thresh"] == 0.7
    for profile in ("paper", "quick"):
        a = load_card("robustseg", profile).to_dict()
        # the ablations follow robustseg in everything but their losses, which keep robustseg's options
        for name, gone in (("robustseg-no-hpdm", "hpdm"), ("robustseg-no-rrm", "rrm")):
            b = load_card(name, profile).to_dict()
            assert {k for k in a if a[k] != b[k]} == {"name", "description", "losses"}
            assert b["losses"] == {k: v for k, v in a["losses"].items() if k != gone}
        # the paper's reading: shuffle pairing shared by both losses, true-mean prototypes, the logit_grad RRM
        p = load_card("robustseg-paper", profile).to_dict()
        assert {k for k in a if a[k] != p[k]} == {"name", "description", "losses"}
        assert {k: v for k, v in p["losses"]["hpdm"].items() if a["losses"]["hpdm"][k] != v} == \
            {"pairing": "shuffle", "norm": "mean"}
        assert {k: v for k, v in p["losses"]["rrm"].items() if a["losses"]["rrm"][k] != v} == \
            {"pairing": "shuffle", "form": "logit_grad", "noise_std": "map", "axis": "channel"}
        # the released zero recipe: zero-filled inputs, its own HPDM draws, RRM slot to slot and effectively off
        z = load_card("robustseg-zero", profile).to_dict()
        assert {k for k in a if a[k] != z[k]} == {"name", "description", "fill", "losses"}
        assert z["fill"] == "zero"
        assert {k: v["weight"] for k, v in z["losses"].items()} == {"ohem_ce": 1.0, "kd": 50.0, "hpdm": 110.0,
                                                                     "rrm": 1e-4}
        assert (z["losses"]["hpdm"]["pairing"], z["losses"]["rrm"]["pairing"], z["losses"]["rrm"]["lam"]) == \
            ("random_each", "same", 1e-10)


def test_gradient_shares_measure_each_weighted_term_against_the_ce() -> None:
    from rsbench.training.grad_share import gradient_shares

    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    terms = {"ohem_ce": (w**2).sum(), "kd": 3 * w.sum(), "rrm": w[0] * 0.0}
    shares = gradient_shares([w], terms, {"ohem_ce": 1.0, "kd": 2.0, "rrm": 12.0})
    # d CE = (2, 4) -> |.| = sqrt(20); d (2 * KD) = (6, 6) -> sqrt(72)
    assert shares["gnorm/ohem_ce"] == pytest.approx(20**0.5)
    assert shares["gshare/kd"] == pytest.approx(72**0.5 / 20**0.5)
    assert shares["gshare/rrm"] == 0.0 and "gshare/ohem_ce" not in shares


def test_log_grad_share_writes_shares_and_leaves_training_unchanged(tmp_path: Path, tiny_teacher: Path) -> None:
    from rsbench.training.log import read_log

    card = _student(tmp_path, COMBOS["robustseg"], iters=10)
    plain = train(card, "deliver-synth", tmp_path / "plain", teacher=tiny_teacher, progress=False)
    shared = train(card, "deliver-synth", tmp_path / "shared", teacher=tiny_teacher, progress=False,
                   log_grad_share=True)
    a, b = load_checkpoint(plain.checkpoint)["model"], load_checkpoint(shared.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith("gshare/") for line in read_log(tmp_path / "plain") for k in line)
    measured = [line for line in read_log(tmp_path / "shared") if "gnorm/ohem_ce" in line]  # steps 5 and 10
    assert len(measured) == 2 and all(line[f"gshare/{t}"] > 0 and line["gnorm/ohem_ce"] > 0 for line in measured
                                      for t in ("kd", "hpdm", "rrm"))
