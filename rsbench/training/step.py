"""One training step's forward: student (+ frozen teacher) -> every loss term and the weighted total.

``TrainStep`` owns the student, the frozen teacher, the losses, the modality-dropout draw and the
pairing draws shared by the feature losses. Each loss declares what it consumes
(``consumes = {forward parameter: step input}`` on its class) and the step hands it those inputs,
so a new loss needs its own module and a card, nothing here. The loop calls the step, logs and steps
the optimiser.

Distributed: DDP wraps the student's forward only (``StudentForward``). The dropout mask and the
pair tables are drawn for the global batch from generators every rank holds in the same state, and
each rank takes its rows, so N processes draw what one process would. RRM's noise is per sample:
each rank draws its own from a seed mixed with its rank.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from rsbench.cards import MethodCard
from rsbench.errors import ConfigError
from rsbench.losses import create_loss, draw_pair_table
from rsbench.models.contract import scored_logits
from rsbench.seeding import mix
from rsbench.training.modality_dropout import ModalityDropout

STEP_INPUTS = ("logits", "labels", "features", "teacher_logits", "teacher_features", "pairing", "slot_present",
               "noise_generator")
"""What a loss may consume: the student's logits and per-stage features, the labels, the frozen teacher's
logits and features, this step's pair table for the loss's ``pairing`` scheme, the student slots holding
features (``drop`` fusion), and a generator for per-sample noise."""
TEACHER_INPUTS = frozenset({"teacher_logits", "teacher_features"})
FEATURE_INPUTS = frozenset({"features", "teacher_features"})


def _consumes(name: str, loss: nn.Module) -> dict[str, str]:
    consumes = getattr(loss, "consumes", None)
    if not isinstance(consumes, dict) or not set(consumes.values()) <= set(STEP_INPUTS):
        raise ConfigError(f"loss {name!r} declares no valid 'consumes' (step inputs: {', '.join(STEP_INPUTS)})")
    return consumes


def build_losses(card: MethodCard, num_classes: int) -> dict[str, nn.Module]:
    """One module per loss term of the card, with the card's options (and the dataset's class count)."""
    from rsbench.losses import LOSSES

    losses = {}
    for name in card.losses:
        extra = {"num_classes": num_classes} if "num_classes" in inspect.signature(LOSSES.get(name)).parameters else {}
        try:
            losses[name] = create_loss(name, **card.loss_options(name), **extra)
        except ValueError as exc:
            raise ConfigError(f"card {card.name}: loss {name!r}: {exc}") from None
    teacher_losses = sorted(n for n, fn in losses.items() if TEACHER_INPUTS & set(_consumes(n, fn).values()))
    if card.stage == "teacher" and teacher_losses:
        raise ConfigError(f"card {card.name}: losses {teacher_losses} need a teacher")
    return losses


def needs_features(losses: dict[str, nn.Module]) -> list[str]:
    """The losses that consume per-stage per-modality features (the model must declare ``features``)."""
    return sorted(n for n, fn in losses.items() if FEATURE_INPUTS & set(_consumes(n, fn).values()))


class StudentForward(nn.Module):
    """The student's forward (with its features when a loss needs them): the module DDP wraps (DDP hooks
    ``forward`` only). A model without per-stage features (CMNeXt) is called plainly and gives None."""

    def __init__(self, model: nn.Module, features: bool = True) -> None:
        super().__init__()
        self.model = model
        self.features = features

    def forward(self, modalities: dict[str, Tensor], present: Tensor | None) -> tuple[Tensor, list[Tensor] | None]:
        if self.features:
            return self.model.forward_features(modalities, present)
        return scored_logits(self.model, self.model(modalities, present)), None


class TrainStep(nn.Module):
    """``step(modalities, labels) -> {"loss": weighted total, <term>: unweighted value}`` for one batch.

    Args:
        student: ``StudentForward`` around the trained model, or DDP around one.
        teacher: the frozen teacher (student cards), or None.
        losses / weights: the card's loss modules and their weights.
        fill: the card's fusion of absent modalities (``drop`` skips the pairs on dropped slots).
        modality_dropout: draw one kept subset per global batch (RobustSeg students, moddrop).
        seed: seeds the dropout and loss generators (saved and restored through ``rng_state``).
        rank / world_size: this process's rows of the global batch.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None, losses: dict[str, nn.Module],
                 weights: dict[str, float], *, fill: str, modality_dropout: bool, num_modalities: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher
        self.losses = nn.ModuleDict(losses)
        self.weights = dict(weights)
        self.consumes = {name: _consumes(name, fn) for name, fn in losses.items()}
        self.needs_teacher = any(TEACHER_INPUTS & set(c.values()) for c in self.consumes.values())
        self.needs_teacher_features = any("teacher_features" in c.values() for c in self.consumes.values())
        if self.needs_teacher and teacher is None:
            raise ConfigError(f"losses {sorted(losses)} need a teacher checkpoint")
        self.fill, self.rank, self.world_size = fill, rank, world_size
        self.dropout_gen = torch.Generator().manual_seed(seed + 1)
        self.loss_gen = torch.Generator().manual_seed(seed + 2)
        self.dropout = ModalityDropout(num_modalities, self.dropout_gen) if modality_dropout else None

    # ---------------------------------------------------------------- randomness
    def rng_state(self) -> dict[str, Tensor]:
        return {"dropout": self.dropout_gen.get_state(), "loss": self.loss_gen.get_state()}

    def load_rng_state(self, state: dict[str, Tensor]) -> None:
        self.dropout_gen.set_state(state["dropout"])
        self.loss_gen.set_state(state["loss"])

    def _rows(self, local: int) -> slice:
        return slice(self.rank * local, (self.rank + 1) * local)

    def _pair_table(self, scheme: str, local: int, stages: int, slots: int, tables: dict[str, Tensor]) -> Tensor:
        """This step's table for ``scheme``, drawn once for the global batch (losses with one scheme share it)."""
        if scheme not in tables:
            table = draw_pair_table(scheme, local * self.world_size, stages, slots, self.loss_gen)
            tables[scheme] = table[self._rows(local)]
        return tables[scheme]

    def _noise_generator(self, device: torch.device) -> torch.Generator:
        """Per-sample noise: the checkpointed loss generator itself (one CPU process), else a per-step seed.

        Drawing on a CPU generator and copying the noise to the GPU each step is slow; a device generator
        seeded from ``loss_gen`` keeps resume exact. Ranks mix their rank in, so their samples differ.
        """
        if device.type == "cpu" and self.world_size == 1:
            return self.loss_gen
        seed = int(torch.randint(0, 2**62, (1,), generator=self.loss_gen))
        return torch.Generator(device=device).manual_seed(mix(seed, self.rank) if self.world_size > 1 else seed)

    # ---------------------------------------------------------------- the step
    def forward(self, modalities: dict[str, Tensor], labels: Tensor,
                present: Tensor | None = None) -> dict[str, Tensor]:
        """``present`` (bool ``[B, M]``) fixes the kept modalities instead of drawing them (tests, benchmarks)."""
        b = labels.shape[0]
        if present is None and self.dropout is not None:
            present = self.dropout(b).to(labels.device)
        logits, feats = self.student(modalities, present)
        inputs: dict[str, Any] = {
            "logits": logits, "labels": labels, "features": feats,
            "slot_present": present.any(0) if present is not None and self.fill == "drop" else None,
        }
        if self.needs_teacher:
            with torch.no_grad():
                if self.needs_teacher_features:
                    inputs["teacher_logits"], inputs["teacher_features"] = self.teacher.forward_features(modalities)
                else:
                    inputs["teacher_logits"] = scored_logits(self.teacher, self.teacher(modalities))
        tables: dict[str, Tensor] = {}
        floats: dict[str, list[Tensor]] = {}
        terms: dict[str, Tensor] = {}
        for name, fn in self.losses.items():
            consumes = self.consumes[name]
            args: dict[str, Any] = {}
            for param, key in sorted(consumes.items(), key=lambda kv: kv[1] == "noise_generator"):
                if key == "pairing":
                    f = inputs["teacher_features"]
                    args[param] = self._pair_table(fn.pairing, b, len(f), f[0].shape[1], tables)
                elif key == "noise_generator":
                    args[param] = self._noise_generator(logits.device)
                elif key in FEATURE_INPUTS:  # feature losses run in float32 with autocast off
                    if key not in floats:
                        floats[key] = [x.float() for x in inputs[key]]
                    args[param] = floats[key]
                else:
                    args[param] = inputs[key]
            if FEATURE_INPUTS & set(consumes.values()):
                with torch.autocast(logits.device.type, enabled=False):
                    terms[name] = fn(**args)
            else:
                terms[name] = fn(**args)
        total = sum(self.weights[k] * v for k, v in terms.items())
        return {"loss": total, **terms}
