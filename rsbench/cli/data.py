"""``rsbench data``: generate look-alike datasets, validate downloads, list what is known."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from rsbench.console import console, status
from rsbench.errors import ConfigError, DataError
from rsbench.progress import make_progress

app = typer.Typer(help="Generate, validate and list datasets.", no_args_is_help=True)


@app.command("list")
def list_cmd() -> None:
    """List the datasets rsbench reads, with modalities, classes and splits."""
    from rsbench.data import dataset_class, list_datasets

    table = Table(title="datasets")
    for col in ("name", "modalities", "classes", "splits", "conditions"):
        table.add_column(col)
    for name in list_datasets():
        info = dataset_class(name).info
        mods = ", ".join(info.modalities)
        if info.optional_modalities:
            mods += f" (+{', '.join(info.optional_modalities)})"
        conds = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.conditions.items()) or "-"
        table.add_row(name, mods, str(info.num_classes), ", ".join(info.splits), conds)
    console.print(table)


@app.command("synth")
def synth_cmd(
    like: str = typer.Option(..., "--like", help="Layout to imitate: deliver, muses or mcubes."),
    out: Path = typer.Option(..., "--out", help="Folder to create (must not exist or be empty)."),
    size: int | None = typer.Option(None, help="Image height in pixels (after any published crop)."),
    n_train: int | None = typer.Option(None, "--n-train", help="Training samples."),
    n_val: int | None = typer.Option(None, "--n-val", help="Validation samples."),
    n_test: int | None = typer.Option(None, "--n-test", help="Test samples."),
    seed: int | None = typer.Option(None, help="Random seed; the same seed writes byte-identical files."),
) -> None:
    """Write procedural data in exactly the real dataset's files, folders, dtypes and encodings."""
    from rsbench.data import split_name
    from rsbench.data.synth import synth_defaults, synthesize

    base, _ = split_name(like)
    out = out.expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"--out {out} exists and is not an empty folder; choose a new one")
    from rsbench.validate import writable_folder

    writable_folder(out)
    given = {"size": size, "n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed}
    settings = {**synth_defaults(base), **{k: v for k, v in given.items() if v is not None}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        with status(f"generating {base}-synth ..."):
            synthesize(base, tmp, **settings)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = settings["n_train"] + settings["n_val"] + settings["n_test"]
    console.print(f"wrote {n} {base}-synth samples to {out} (read it with --dataset {base} --root {out})")


@app.command("check")
def check_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="deliver, muses, mcubes (or a -synth name)."),
    root: Path | None = typer.Option(None, "--root", help="Folder of the download (default for -synth: the cache)."),
    splits: str = typer.Option("train,val,test", "--splits", help="Comma-separated splits to check."),
) -> None:
    """Validate a dataset folder: counts, missing partner files, unreadable files, sizes, label range.

    Exits 1 when any problem is found.
    """
    from rsbench.data import create_dataset, dataset_class

    info = dataset_class(dataset).info
    wanted = [s.strip() for s in splits.split(",") if s.strip()]
    bad = [s for s in wanted if s not in info.splits]
    if bad or not wanted:
        raise ConfigError(f"unknown split {bad[0] if bad else splits!r} (choose from {', '.join(info.splits)})")
    if root is not None and not root.expanduser().is_dir():
        raise DataError(dataset_class(dataset).missing_root_message(root.expanduser()))

    counts = Table(title=f"{dataset}: samples")
    for col in ("split", "condition", "samples"):
        counts.add_column(col, justify="right" if col == "samples" else "left")
    problems = []
    for split in wanted:
        try:
            ds = create_dataset(dataset, root=root, split=split)
        except DataError as exc:
            problems.append((split, "-", "split", str(exc)))
            continue
        for cond, n in ds.counts().items():
            counts.add_row(split, cond, str(n))
        with make_progress() as bar:
            task = bar.add_task(f"checking {split}", total=len(ds))
            found = ds.check(progress=lambda i, task=task: bar.update(task, completed=i))
        problems.extend((split, p.sample, p.kind, p.detail) for p in found)
    console.print(counts)
    if not problems:
        console.print(f"[green]{dataset}: no problems found[/green]")
        return
    table = Table(title=f"{dataset}: {len(problems)} problems")
    for col in ("split", "sample", "kind", "detail"):
        table.add_column(col, overflow="fold")
    for row in problems[:50]:
        table.add_row(*row)
    console.print(table)
    if len(problems) > 50:
        console.print(f"... and {len(problems) - 50} more")
    raise typer.Exit(1)
