"""The ``rsbench`` command line: a Typer app assembled from one sub-app per command group.

The CLI is thin: it parses options, validates them (``rsbench.validate``), calls the library
and prints with rich. A user error (:class:`rsbench.errors.RsbenchError`) and click's own usage
errors (missing argument, bad option or value, no such command) become one line on stderr,
``rsbench: error: ...``, and a non-zero exit code, never a traceback or a box.

Importing this module must stay cheap (no torch, no timm): ``--help`` answers at once. Command
modules import the library inside their functions.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # recent typer versions carry their own copy of click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exc

from rsbench import __version__
from rsbench.console import header_before_output
from rsbench.errors import RsbenchError


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_error_line(exc: click_exc.ClickException) -> str:
    """``rsbench: error: <command>: <click's message> (see <command> --help)`` on one line."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "rsbench"
    hint = f" (see {where} --help)" if isinstance(exc, click_exc.UsageError) else ""
    prefix = "" if where == "rsbench" else f"{where.removeprefix('rsbench ')}: "
    return f"rsbench: error: {prefix}{_one_line(exc.format_message())}{hint}"


class _UserErrorGroup(TyperGroup):
    """Top-level group: user errors and click usage errors from any sub-command become one line."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RsbenchError as exc:
            typer.echo(f"rsbench: error: {_one_line(str(exc))}", err=True)
            raise typer.Exit(exc.exit_code) from None

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run without click's standalone handling, so its usage errors are printed our way (exit 2)."""
        try:
            rv = super().main(args, prog_name or "rsbench", complete_var, standalone_mode=False, **extra)
        except click_exc.NoArgsIsHelpError as exc:  # bare ``rsbench`` or ``rsbench data``: the help
            exc.show()
            code = exc.exit_code
        except click_exc.ClickException as exc:
            typer.echo(_usage_error_line(exc), err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("rsbench: error: aborted", err=True)
            code = 1
        else:
            code = rv if isinstance(rv, int) else 0
        finally:
            header_before_output(None)  # a header never printed (an early error) must not leak into the next command
        if not standalone_mode:
            return code
        sys.exit(code)


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
    from rsbench.cli import compare, data, demo, evaluate, leaderboard, models, plot, train

    app.add_typer(data.app, name="data")
    app.command("train")(train.train_cmd)
    app.command("eval")(evaluate.eval_cmd)
    app.command("demo")(demo.demo)
    app.command("plot")(plot.plot_cmd)
    app.command("compare")(compare.compare_cmd)
    app.command("models")(models.models_cmd)
    app.add_typer(leaderboard.app, name="leaderboard")


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
