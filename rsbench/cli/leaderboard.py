"""``rsbench leaderboard add|build|check``: the store of records and the tables generated from it."""

from __future__ import annotations

from pathlib import Path

import typer

from rsbench.console import console

app = typer.Typer(help="Leaderboards: records in leaderboards/records, tables generated from them.",
                  no_args_is_help=True)
ROOT = typer.Option(Path("leaderboards"), "--root", help="The leaderboards folder.")


@app.command("add")
def add_cmd(records: list[Path] = typer.Argument(..., help="Record files or folders."), root: Path = ROOT) -> None:
    """Copy records into the store under deterministic names (never overwriting)."""
    from rsbench.leaderboard.store import add

    for src, dest, status in add(records, root):
        console.print(f"{status}: {src} -> {dest}")


@app.command("build")
def build_cmd(root: Path = ROOT) -> None:
    """Write <dataset>.md, <dataset>.csv and index.html from the records and reported.yaml."""
    from rsbench.leaderboard.store import write_with_notes

    paths, notes = write_with_notes(root)
    for path in paths:
        console.print(f"wrote {path}")
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


@app.command("check")
def check_cmd(root: Path = ROOT) -> None:
    """Exit 1 when a committed table differs from what the records generate, or a record is invalid."""
    from rsbench.leaderboard.store import check

    problems = check(root)
    for p in problems:
        typer.echo(f"rsbench: error: {p}", err=True)
    if problems:
        raise typer.Exit(1)
    console.print(f"{root}: tables match the records")
