"""Progress bars for long work: training (loss terms, ETA) and evaluation."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rsbench.console import console


def make_progress(*extra: TextColumn) -> Progress:
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
    """A rich bar over iterations showing the loss terms; silent when ``enabled`` is False."""

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
