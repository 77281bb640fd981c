"""Stop signals: Ctrl-C (SIGINT), SIGTERM, SIGUSR1 and SIGUSR2 ask a run to stop cleanly, once.

Why one module: training and evaluation (which never imports training) both stop on the same four
signals, and a cluster delivers them more than once. Under a scheduler the signal reaches each
process from the scheduler and again from torchrun (and from ``rsbench train --nproc``); a
terminal's Ctrl-C reaches every process of the foreground group. So the first of these signals
requests the stop and records which one it was; every later one (the same or another) while that
stop is pending is counted once: it never aborts the checkpoint or record being written. A repeat
more than ``REPEAT_WINDOW_S`` after the first says on stderr that the stop is under way (SIGKILL
ends a run at once, without a checkpoint).

Two ways to stop:
- ``raise_at_once=False`` (training): the handler only sets a flag; the loop finishes the step,
  writes a checkpoint and raises :class:`rsbench.training.TrainingInterrupted`.
- ``raise_at_once=True`` (evaluation): the handler raises :class:`Interrupted` where the main thread
  is, except inside :meth:`StopSignals.deferred` (writing a record), which raises it on leaving.

The exit status of a stopped command is ``128 + signal number``, as a shell reports a process killed
by that signal: SIGINT 130, SIGTERM 143, SIGUSR1 138, SIGUSR2 140 (Linux numbers).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2") if hasattr(signal, name))
REPEAT_WINDOW_S = 2.0  # a repeat within this of the first signal is a duplicate delivery: counted once, silently


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """``128 + signum``: what a shell reports for a process ended by that signal."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """A stop signal ended an evaluation (raised in the main thread, outside :meth:`StopSignals.deferred`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


class StopSignals:
    """The stop request of one command: which signal asked first (``signum``), and when.

    Use as a context manager (:func:`stop_signals`); nested uses share the outermost one, so a command that
    trains a teacher and then a student keeps one request across both stages.
    """

    def __init__(self, raise_at_once: bool = False, on_first: Callable[[int], None] | None = None) -> None:
        self.raise_at_once, self.on_first = raise_at_once, on_first
        self.signum: int | None = None
        self.at: float | None = None
        self.repeats = 0
        self.event = threading.Event()
        self._deferred = 0
        self._raised = False
        self._told = False

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def name(self) -> str:
        return signal_name(self.signum) if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum) if self.signum is not None else 1

    def request(self, signum: int) -> None:
        """What the handler does (callable directly, e.g. from a test or another thread)."""
        if self.signum is not None:  # a repeat while the stop is pending: counted once
            self.repeats += 1
            if not self._told and self.at is not None and time.monotonic() - self.at > REPEAT_WINDOW_S:
                self._told = True
                _write_stderr(f"rsbench: already stopping ({self.name}, then {signal_name(signum)}): the run ends "
                              "after the current step and its checkpoint; SIGKILL ends it at once, without one\n")
            return
        self.signum, self.at = int(signum), time.monotonic()
        self.event.set()
        if self.on_first is not None:
            self.on_first(int(signum))
        if self.raise_at_once and not self._deferred:
            self._raised = True
            raise Interrupted(signum)

    def _handler(self, signum: int, frame: Any) -> None:
        self.request(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block no stop signal interrupts (writing a record); a signal that came during it is raised after."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
        if self.raise_at_once and not self._deferred and self.signum is not None and not self._raised:
            self._raised = True
            raise Interrupted(self.signum)


_active: StopSignals | None = None


@contextmanager
def stop_signals(raise_at_once: bool = False, on_first: Callable[[int], None] | None = None,
                 exiting: bool = False) -> Iterator[StopSignals]:
    """Handle SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 as a stop request for the block; the previous handlers after.

    ``on_first(signum)`` runs on the first signal (a launcher passes it on). ``exiting`` (a command that ends
    after the block): once a stop was requested, the signals stay ignored instead, so a duplicate arriving while
    the process exits cannot turn its status into death by signal. Only the main thread can install handlers:
    elsewhere the request is never set by a signal (it can still be set with :meth:`StopSignals.request`). A
    nested call yields the active request (its own options unused).
    """
    global _active
    if _active is not None:
        yield _active
        return
    stop = StopSignals(raise_at_once, on_first)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, stop._handler) for s in STOP_SIGNALS}
    _active = stop
    try:
        yield stop
    finally:
        _active = None
        for s, handler in previous.items():
            if exiting and stop.requested:
                handler = signal.SIG_IGN
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``worker_init_fn`` of DataLoader workers: the stop signals are the main process's to act on.

    torchrun signals each rank's process group, and a scheduler every process: a worker ended by SIGTERM
    would make the main process fail (``DataLoader worker ... is killed by signal``) in the middle of the
    checkpoint it is writing. Ignored here, the workers live until the loader shuts them down.
    """
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def _write_stderr(text: str) -> None:
    try:
        os.write(2, text.encode())
    except OSError:
        pass


class EvaluationInterrupted(Interrupted):
    """A stop signal ended an evaluation of several protocols: the records written, the protocols left."""

    def __init__(self, signum: int, written: list[str], left: list[str]) -> None:
        super().__init__(signum)
        self.written, self.left = written, left

    def __str__(self) -> str:
        done = f"wrote {', '.join(self.written)}" if self.written else "no record written"
        rest = f"; not written: {', '.join(self.left)}" if self.left else ""
        return f"interrupted ({signal_name(self.signum)}): {done}{rest}"
