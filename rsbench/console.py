"""One shared rich console, so output can be captured and styled consistently.

In a terminal rich wraps lines to the window. Outside one (a CI log, ``| tee``, a file) nothing
is wrapped or cut: a path, a record name or a subset name stays whole on its line, where it
can be copied and searched; tables take the width their cells need.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

from rich.console import Console, ConsoleRenderable, RenderableType, RenderHook, RichCast
from rich.table import Table
from rich.text import Text

LOG_WIDTH = 1000
"""Columns assumed when the output is not a terminal: wider than any table rsbench prints."""


def make_console(file: object | None = None) -> Console:
    """A console that wraps in a terminal and never wraps or truncates elsewhere."""
    probe = Console(file=file)  # type: ignore[arg-type]
    if probe.is_terminal:
        return Console(file=file, highlight=False)  # type: ignore[arg-type]
    return Console(file=file, highlight=False, width=LOG_WIDTH, soft_wrap=True)  # type: ignore[arg-type]


def is_interactive() -> bool:
    """Whether the shared console writes to a terminal (live bars) or to a log (plain progress lines)."""
    return console.is_terminal


console = make_console()
if os.environ.get("RANK", "0") != "0":
    console.quiet = True  # under torchrun only rank 0 prints (errors still reach stderr through the CLI)


def add_name_column(table: Table, header: str, names: Iterable[str]) -> None:
    """A table's first column of names (modality subsets, methods, protocols) that is never cut with "…".

    At least as wide as its longest name; in a terminal too narrow even for that, a name folds onto
    a second line rather than losing its end (``rgb+depth+ev…`` would hide which subset it is).
    """
    width = max([len(header), *(len(str(n)) for n in names)])
    table.add_column(header, min_width=width, overflow="fold")


def status(message: str) -> AbstractContextManager[object]:
    """A spinner with ``message`` in a terminal; in a log, where a spinner shows nothing, the message as a line."""
    if is_interactive():
        return console.status(message)
    console.print(message)
    return nullcontext()


class _PendingHeader(RenderHook):
    """Prepends a line to the console's next output, once (see :func:`header_before_output`)."""

    def __init__(self) -> None:
        self.line: str | None = None

    def process_renderables(
        self, renderables: list[ConsoleRenderable | RichCast | RenderableType]
    ) -> list[ConsoleRenderable | RichCast | RenderableType]:
        if self.line is None:
            return renderables
        line, self.line = self.line, None
        return [Text(line), *renderables]


_pending = _PendingHeader()
console.push_render_hook(_pending)


def header_before_output(line: str | None) -> None:
    """Print ``line`` just before the command's next output (``None`` forgets a pending one).

    A run's header (its thread count) then sits above its first real line, while an input error
    found later, before any output, still leaves exactly one line (``rsbench: error: ...``).
    """
    _pending.line = line
