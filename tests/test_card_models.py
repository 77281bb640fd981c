"""A card's model keys are checked against the model's factory and capabilities when the card is read."""

from __future__ import annotations

import pytest

from rsbench.cards import load_card, model_kwargs
from rsbench.errors import ConfigError
from rsbench.runs import build_model
from tests.conftest import write_card


def test_model_options_reach_the_factory(tmp_path):
    card = load_card(str(write_card(tmp_path / "c.yaml", model="segformer_timm",
                                    model_options={"backbone": "resnet18"})), "quick")
    assert model_kwargs(card)["backbone"] == "resnet18"
    model = build_model(card, ("rgb", "depth"), 5)
    assert type(model.encoder).__name__ == "TimmEncoder"


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"model": "segformer_timm", "model_options": {"colour": "red"}}, "model segformer_timm has no option 'colour'"),
    ({"model": "segformer_mit_test", "model_options": {"dropuot": 0.1}}, "has no option 'dropuot'"),
    ({"model": "segformer_mit_test", "model_options": {"num_classes": 3}}, "model_options.num_classes is not a card"),
    ({"model": "segformer_mit_test", "model_options": {"embed_dim": 3}}, "model_options.embed_dim is not a card"),
    ({"model": "cmnext_mit_test", "fill": "drop"}, "supports fill zero only; card c asks for fill 'drop'"),
    ({"model": "cmnext_mit_test", "fill": "zero", "stage": "student", "teacher": "teacher",
      "losses": {"ohem_ce": 1.0, "hpdm": 1.0}}, "losses hpdm need per-stage per-modality features"),
    ({"model": "cmnext_mit_tset"}, "did you mean cmnext_mit_test"),
])
def test_bad_model_keys_are_refused_naming_them(tmp_path, overrides, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_card(str(write_card(tmp_path / "c.yaml", **overrides)), "quick")


# digests computed by the code before the model contract (commit 8fc7234), for the shipped cards
DIGESTS_BEFORE = {("teacher", "quick"): "63d99a54a2eab62d", ("teacher", "paper"): "c0d27f746da8ac17",
                  ("moddrop", "quick"): "c5bdb631700cfd93", ("moddrop", "paper"): "4159d93181eb3a07",
                  ("kd", "quick"): "d71d44ee9f949a3b", ("kd", "paper"): "b958ba54d78356d9",
                  ("robustseg", "quick"): "f28867ec513f159f", ("robustseg", "paper"): "78f92ecabe535060"}


@pytest.mark.parametrize(("name", "profile"), sorted(DIGESTS_BEFORE))
def test_digests_of_cards_without_new_keys_are_unchanged(name, profile):
    """``model_options`` (added later) is left out of a digest while empty, and ``embed_dim`` may now be null:
    shipped cards keep the digests their checkpoints and records were written with."""
    assert load_card(name, profile).digest() == DIGESTS_BEFORE[name, profile]
