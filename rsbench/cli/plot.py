"""``rsbench plot``: figures of evaluation records (PNG)."""

from __future__ import annotations

from pathlib import Path

import typer

from rsbench.console import console


def plot_cmd(
    records: list[Path] = typer.Argument(..., help="Record .json files written by rsbench eval."),
    out: Path = typer.Option(Path("plots"), "--out", help="Folder for the PNG files."),
) -> None:
    """Per-condition mIoU bars (subsets, RMM, noise) or mIoU against severity (corruptions), one PNG per record."""
    from rsbench.plots import plot_record
    from rsbench.results import read_record
    from rsbench.validate import writable_folder

    writable_folder(out)
    loaded = [(p, read_record(p)) for p in records]  # every record is checked before anything is drawn
    for path, record in loaded:
        png = plot_record(record, out / f"{path.stem}.png")
        console.print(f"{path} -> {png}")
