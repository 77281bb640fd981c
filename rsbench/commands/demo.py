"""``rsbench demo``: the pipeline on generated data in the real datasets' layouts."""

from __future__ import annotations

import time

import numpy as np
import typer
from rich.table import Table

from rsbench.console import console


def _summary(names: list[str]) -> Table:
    from rsbench.data import create_dataset

    table = Table(title="generated datasets (real layouts)")
    for col in ("dataset", "split", "samples", "modalities [C,H,W]", "classes present"):
        table.add_column(col)
    for name in names:
        for split in ("train", "val", "test"):
            ds = create_dataset(name, split=split)
            first = ds[0]
            shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in first["modalities"].items())
            present: set[int] = set()
            for i in range(len(ds)):
                _, label = ds.load_arrays(i)
                present.update(int(c) for c in np.unique(label) if c != 255)
            table.add_row(name, split, str(len(ds)), shapes, f"{len(present)}/{ds.info.num_classes}")
    return table


def demo(
    datasets: str = typer.Option(
        "deliver-synth,muses-synth,mcubes-synth", "--datasets", help="Comma-separated -synth datasets to show."
    ),
) -> None:
    """Generate look-alike data for the benchmarks (cached), load it and summarise it."""
    start = time.perf_counter()
    names = [n.strip() for n in datasets.split(",") if n.strip()]
    with console.status("generating and loading data ..."):
        table = _summary(names)
    console.print(table)
    console.print(f"demo finished in {time.perf_counter() - start:.1f} s")
