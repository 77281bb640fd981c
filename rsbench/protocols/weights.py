"""Score a bare released state_dict: build the model its keys ask for, check it against the data, load strictly.

``rsbench eval --weights FILE --model NAME`` (or ``--released NAME``, which brings the model and the input
spec of a registered released checkpoint). Everything that can be refused is refused here, before any
data is read beyond the header check: a layout the model cannot read, a modality count that is not the
dataset's, a class count that is not the dataset's, a fill the model cannot do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsbench.errors import ConfigError


@dataclass(frozen=True)
class WeightsSpec:
    """What scoring a file needs: the model, its modalities in order, its head width, the evaluation size."""

    model: str
    modalities: tuple[str, ...] | None
    embed_dim: int | None
    eval_size: int | None
    released: str | None = None
    eval_resize: str = "antialias"
    dataset_options: dict[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """What a record stores as the 'card' of a weights evaluation."""
        return {"embed_dim": self.embed_dim, "eval_size": self.eval_size, "eval_resize": self.eval_resize,
                "released": self.released, "modalities": list(self.modalities) if self.modalities else None,
                "dataset_options": dict(self.dataset_options)}


def resolve_weights_spec(weights: Path, model: str | None, released: str | None, modalities: tuple[str, ...] | None,
                         embed_dim: int | None, eval_size: int | None, dataset: str,
                         eval_resize: str | None = None) -> WeightsSpec:
    """The model and input spec for ``weights``: a released entry's, overridden by what the user gave."""
    from rsbench.data import dataset_class
    from rsbench.models import MODELS
    from rsbench.models.checkpoint import (
        checkpoint_classes,
        checkpoint_head_width,
        checkpoint_modalities,
        read_state_dict,
    )

    entry = None
    if released is not None:
        from rsbench.models.zoo.released import released_checkpoint

        entry = released_checkpoint(released)
        base = dataset.removesuffix("-synth")
        if entry.dataset != base:
            raise ConfigError(f"released checkpoint {released} is for {entry.dataset}, not {dataset}")
        if model is not None and model != entry.model:
            raise ConfigError(f"released checkpoint {released} is read by --model {entry.model}, not {model}")
    if entry is not None and entry.sha256:
        from rsbench.results import file_sha256

        digest = file_sha256(weights)
        if digest != entry.sha256:
            raise ConfigError(f"{weights} is not the released {released} file (sha256 {digest[:12]}..., the "
                              f"registry has {entry.sha256[:12]}...)")
    name = model or (entry.model if entry else None)
    if name is None:
        raise ConfigError("--weights needs --model (e.g. segformer_mit_b0, cmnext_mit_b2) or --released NAME "
                          "(`rsbench models` lists them)")
    MODELS.get(name)  # an unknown model name fails here, with close matches
    mods = modalities or (entry.modalities if entry else None)
    info = dataset_class(dataset).info
    if mods is not None:
        unknown = sorted(set(mods) - set(info.all_modalities))
        if unknown:
            raise ConfigError(f"modalities {unknown} are not {dataset}'s ({', '.join(info.all_modalities)})")
    state = read_state_dict(weights)
    found = checkpoint_modalities(state)
    wanted = len(mods) if mods is not None else len(info.modalities)
    if found is not None and found != wanted:
        names = ", ".join(mods or info.modalities)
        raise ConfigError(f"{weights} holds weights for {found} modalities; {dataset} gives {wanted} ({names}): "
                          "pass --modalities with the file's modalities in the order it was trained on")
    classes = checkpoint_classes(state)
    if classes is not None and classes != info.num_classes:
        raise ConfigError(f"{weights} predicts {classes} classes; {dataset} has {info.num_classes}")
    width = embed_dim or (entry.embed_dim if entry else None) or checkpoint_head_width(state)
    size = eval_size or (entry.eval_size if entry else None)
    resize = eval_resize or (entry.eval_resize if entry else "antialias")
    from rsbench.data.transforms import EVAL_METHODS

    if resize not in EVAL_METHODS:
        raise ConfigError(f"--eval-resize must be one of {', '.join(EVAL_METHODS)}, got {resize!r}")
    return WeightsSpec(model=name, modalities=tuple(mods) if mods else None, embed_dim=width, eval_size=size,
                       released=released, eval_resize=resize,
                       dataset_options=dict(entry.dataset_options) if entry else {})


def build_weights_model(spec: WeightsSpec, weights: Path, modalities: tuple[str, ...], num_classes: int):  # noqa: ANN201
    """The model of ``spec`` with the file loaded strictly (eval mode)."""
    from rsbench.models import create_model, load_pretrained

    model = create_model(spec.model, modalities=modalities, num_classes=num_classes, embed_dim=spec.embed_dim)
    load_pretrained(model, weights)
    return model.eval()
