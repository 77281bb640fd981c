"""``rsbench compare``: methods x protocols from records or run folders, with intervals and deltas."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from rsbench.console import add_name_column, console


def compare_cmd(
    paths: list[Path] = typer.Argument(..., help="Record files or folders (run folders, records/ ...)."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Only records of this dataset."),
    protocol: str | None = typer.Option(None, "--protocol", help="Comma-separated protocol cards to keep."),
    method: str | None = typer.Option(None, "--method", help="Comma-separated methods to keep."),
    baseline: str | None = typer.Option(None, "--baseline", help="Show each method's difference to this one."),
    fmt: str = typer.Option("table", "--format", help="table, md, csv or json."),
    force: bool = typer.Option(False, "--force", help="Compare across splits, resolutions, conventions, data; "
                               "pool a method's records of different training or repeated seeds."),
    n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples of the images."),
) -> None:
    """Compare methods: the protocol's headline mIoU (full, or avg over conditions) with a 95 % interval.

    One run: bootstrap over the images; several runs (seeds): t interval over them. With --baseline, a
    difference marked * is significant (its paired interval excludes 0). One evaluation given twice counts
    once (said in the output; csv: on stderr); records of one method from different training, or with a
    seed twice, are refused unless --force.
    """
    from rsbench.leaderboard import compare, render

    split = [s.strip() for s in (protocol or "").split(",") if s.strip()]
    methods = [s.strip() for s in (method or "").split(",") if s.strip()]
    result = compare(paths, dataset=dataset, protocols=split, methods=methods, baseline=baseline, force=force,
                     n_boot=n_boot)
    if fmt == "csv" and result["duplicates_note"]:
        typer.echo(f"rsbench: note: {result['duplicates_note']}", err=True)
    if fmt != "table":
        console.print(render(result, fmt), markup=False, highlight=False, soft_wrap=True)
        return
    console.print(comparison_table(result, baseline))


def comparison_table(result: dict, baseline: str | None) -> Table:
    """The terminal table of a comparison (best per protocol in bold)."""
    from rsbench.leaderboard.compare import format_cell

    title = f"{result['dataset']}: mIoU [95 % interval]" + (f", difference to {baseline}" if baseline else "")
    table = Table(title=title + (f"  ({result['note']}; forced)" if result["note"] else ""),
                  caption=result.get("duplicates_note"))
    add_name_column(table, "method", result["methods"])
    for p in result["protocols"]:
        table.add_column(p, justify="right")
    cells = result["cells"]
    best = {p: max((cells[m, p].value for m in result["methods"] if (m, p) in cells), default=None)
            for p in result["protocols"]}
    for m in result["methods"]:
        table.add_row(m, *("" if (m, p) not in cells else format_cell(cells[m, p], bold=cells[m, p].value == best[p])
                           for p in result["protocols"]))
    return table
