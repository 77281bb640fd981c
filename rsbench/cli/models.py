"""``rsbench models``: the registered architectures with what they declare, and the field's released checkpoints."""

from __future__ import annotations

import typer
from rich.table import Table

from rsbench.console import add_name_column, console


def architectures() -> list[tuple[str, list[str], str]]:
    """(architecture, its registered model names, what it declares) per model class."""
    from rsbench.models import MODELS
    from rsbench.models.contract import factory_capabilities

    groups: dict[str, list[str]] = {}
    declared: dict[str, str] = {}
    for name in MODELS:
        factory = MODELS.get(name)
        cls = getattr(factory, "model_class", None)
        arch = str(getattr(cls, "architecture", None) or getattr(cls, "__name__", "undeclared"))
        groups.setdefault(arch, []).append(name)
        caps = factory_capabilities(factory)
        declared[arch] = (f"fills {'/'.join(caps.fills)}; "
                          f"{'encodes each modality once' if caps.separable else 'one forward per condition'}; "
                          f"{'per-stage features (HPDM, RRM)' if caps.features else 'no per-stage features'}")
    return [(arch, names, declared[arch]) for arch, names in sorted(groups.items())]


def models_cmd(
    commands: bool = typer.Option(True, "--commands/--no-commands", help="Print the command that scores each file."),
) -> None:
    """List architectures (registered models and what they declare) and the field's released checkpoints."""
    from rsbench.models.zoo.released import released_checkpoints

    arch = Table(title="architectures")
    arch.add_column("architecture")
    arch.add_column("models")
    arch.add_column("declares")
    for name, models, declared in architectures():
        arch.add_row(name, ", ".join(models), declared)
    console.print(arch)

    entries = released_checkpoints()
    table = Table(title="released checkpoints (local files: nothing is downloaded)")
    add_name_column(table, "name", list(entries))
    for col in ("model", "dataset", "modalities", "eval size", "reported mIoU", "sha256"):
        table.add_column(col)
    for name, e in entries.items():
        table.add_row(name, e.model, e.dataset, ",".join(e.modalities), str(e.eval_size or "native"),
                      "-" if e.reported_miou is None else f"{e.reported_miou:.2f}",
                      e.sha256[:12] if e.sha256 else "not verified")
    console.print(table)
    if commands:
        for name, e in entries.items():
            console.print(f"{name}: {e.hosted}", soft_wrap=True)
            console.print(f"  {e.command()}", soft_wrap=True)
