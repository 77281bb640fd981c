"""Progress for long work: training (loss terms, ETA) and evaluation.

In a terminal: a rich bar, removed when done. Outside one (CI logs, ``| tee``), a live bar
shows nothing until it ends and then leaves a blank line, so :class:`PlainProgress` writes
plain lines instead: one when a task starts, then one at least every
:data:`PLAIN_INTERVAL_S` seconds while it advances, and one when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rsbench.console import console, is_interactive

PLAIN_INTERVAL_S = 30.0
"""Longest silence of a task's progress in non-interactive output."""


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class _PlainTask:
    description: str
    total: float | None
    completed: float
    fields: dict[str, Any]
    started: float
    printed: float
    start_completed: float
    done: bool = False


class PlainProgress:
    """The part of ``rich.progress.Progress`` rsbench uses, as plain log lines (no cursor control).

    ``clock`` is injectable so tests can advance time without waiting.
    """

    def __init__(self, interval: float = PLAIN_INTERVAL_S, clock: Callable[[], float] = time.monotonic,
                 field_name: str | None = None) -> None:
        self.console = console
        self._interval, self._clock, self._field = interval, clock, field_name
        self._tasks: dict[int, _PlainTask] = {}

    # -- the rich.Progress interface
    def start(self) -> None:
        """Nothing to set up: lines are written as tasks advance."""

    def stop(self) -> None:
        for task_id, task in self._tasks.items():
            if not task.done:
                self._finish(task_id)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def add_task(self, description: str, total: float | None = 100.0, completed: float = 0, **fields: Any) -> int:
        now = self._clock()
        task_id = len(self._tasks)
        self._tasks[task_id] = _PlainTask(description, total, completed, fields, now, now, completed)
        self.console.print(f"{description}: started{self._of(self._tasks[task_id])}")
        return task_id

    def update(self, task_id: int, *, completed: float | None = None, advance: float | None = None,
               total: float | None = None, **fields: Any) -> None:
        task = self._tasks[task_id]
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        task.fields.update(fields)
        now = self._clock()
        if task.total is not None and task.completed >= task.total:
            self._finish(task_id)
        elif now - task.printed >= self._interval:
            task.printed = now
            self.console.print(self._line(task, now))

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    # -- lines
    def _of(self, task: _PlainTask) -> str:
        return f" ({_fmt(task.completed)} of {_fmt(task.total)})" if task.total is not None else ""

    def _line(self, task: _PlainTask, now: float) -> str:
        elapsed = now - task.started
        parts = [f"{task.description}: {_fmt(task.completed)}"]
        if task.total:
            parts[0] += f"/{_fmt(task.total)} ({100 * task.completed / task.total:.0f} %)"
        parts.append(f"{_clock(elapsed)} elapsed")
        done_here = task.completed - task.start_completed
        if task.total and done_here > 0:
            parts.append(f"about {_clock(elapsed / done_here * (task.total - task.completed))} left")
        terms = task.fields.get(self._field) if self._field else None
        if terms:
            parts.append(str(terms))
        return ", ".join(parts)

    def _finish(self, task_id: int) -> None:
        task = self._tasks[task_id]
        if task.done:
            return
        task.done = True
        of = "" if task.total is None else f"/{_fmt(task.total)}"
        self.console.print(f"{task.description}: {_fmt(task.completed)}{of} in {_clock(self._clock() - task.started)}")


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def make_progress(*extra: TextColumn, interactive: bool | None = None) -> Progress | PlainProgress:
    """A transient rich bar in a terminal; :class:`PlainProgress` lines otherwise."""
    if not (is_interactive() if interactive is None else interactive):
        field_name = None
        for column in extra:
            text = getattr(column, "text_format", "")
            if "task.fields[" in text:
                field_name = text.split("task.fields[", 1)[1].split("]", 1)[0]
        return PlainProgress(field_name=field_name)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


class TrainProgress:
    """A bar over iterations showing the loss terms (plain lines in a log); silent when ``enabled`` is False.

    The loop calls ``update(it, loss=..., **terms)`` every iteration and ``log(message)`` for
    lines that must stay (validation scores).
    """

    def __init__(self, total: int, start: int = 0, enabled: bool = True, title: str = "training") -> None:
        self.enabled = enabled
        self._progress = make_progress(TextColumn("{task.fields[terms]}")) if enabled else None
        self._total, self._start, self._title = total, start, title
        self._task = None

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.__enter__()
            self._task = self._progress.add_task(self._title, total=self._total, completed=self._start, terms="")
        return self

    def update(self, it: int, **terms: float) -> None:
        if self._progress is not None:
            text = " ".join(f"{k} {v:.3f}" for k, v in terms.items())
            self._progress.update(self._task, completed=it, terms=text)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
