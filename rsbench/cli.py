"""The ``rsbench`` command line: a Typer app assembled from one sub-app per command group.

The CLI is thin: it parses options, calls the library and prints with rich. A user
error (:class:`rsbench.errors.RsbenchError`) becomes one line on stderr and a non-zero
exit code, never a traceback.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from rsbench import __version__
from rsbench.errors import RsbenchError


class _UserErrorGroup(TyperGroup):
    """Top-level group that turns user errors from any sub-command into a one-line message."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RsbenchError as exc:
            message = " ".join(str(exc).split())
            typer.echo(f"rsbench: error: {message}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_UserErrorGroup,
    name="rsbench",
    help="Benchmark and robustness evaluation for multi-modal semantic segmentation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rsbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Benchmark and robustness evaluation for multi-modal semantic segmentation."""


def _register() -> None:
    from rsbench.commands import compare, data, demo, evaluate, leaderboard, plot, train

    app.add_typer(data.app, name="data")
    app.command("train")(train.train_cmd)
    app.command("eval")(evaluate.eval_cmd)
    app.command("demo")(demo.demo)
    app.command("plot")(plot.plot_cmd)
    app.command("compare")(compare.compare_cmd)
    app.add_typer(leaderboard.app, name="leaderboard")


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
