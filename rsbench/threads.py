"""How many CPU threads torch may use: ``--threads``, ``RSBENCH_THREADS``, ``OMP_NUM_THREADS``, or a default.

Why a policy of our own: torch starts one compute thread per core it sees, and its OpenMP
threads wait for each other at the end of every operation. When another process holds one of
those cores, every operation waits for the thread that is not running: on a 2-core machine
with other work the demo took 39 min with torch's default against 4 min with one thread.
The default therefore leaves one CPU of those this process may use (``os.sched_getaffinity``)
free, and stops at :data:`MAX_DEFAULT_THREADS` (small models gain little beyond it).

The default depends only on the CPUs available, never on the momentary load, so a rerun on the
same machine uses the same count: the float sums inside convolutions and matrix products are
split by thread, so results differ in the last digits between thread counts (see README).
This module does not import torch until :func:`apply_threads` is called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from rsbench.errors import ConfigError

ENV_VAR = "RSBENCH_THREADS"
MAX_DEFAULT_THREADS = 8
THREADS_HELP = (f"CPU threads for torch (default: the CPUs available to this process minus one, at most "
                f"{MAX_DEFAULT_THREADS}; or ${ENV_VAR}).")


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count of a run and where it came from (``--threads``, an env variable, ``default``)."""

    threads: int
    source: str
    cpus: int

    def describe(self) -> str:
        """One line for a run's header, e.g. ``threads: 1 (default: 2 CPUs available, one left free)``."""
        if self.source == "default":
            why = f"default: {self.cpus} CPUs available, one left free" if self.cpus > 1 else "default: 1 CPU available"
            return f"threads: {self.threads} ({why}; --threads or ${ENV_VAR} to change)"
        return f"threads: {self.threads} (from {self.source}; {self.cpus} CPUs available)"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under ``taskset`` or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def default_threads(cpus: int) -> int:
    """All available CPUs but one, at least 1 and at most :data:`MAX_DEFAULT_THREADS`."""
    return max(1, min(MAX_DEFAULT_THREADS, cpus - 1))


def _positive(raw: str) -> int | None:
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value > 0 else None


MAX_THREADS = 1024
"""More threads than any machine rsbench runs on has cores: a typo (``--threads 100000``), refused."""


def choose_threads(option: int | None = None, environ: Mapping[str, str] | None = None) -> ThreadChoice:
    """The thread count: ``option`` (``--threads``), else ``$RSBENCH_THREADS``, else ``$OMP_NUM_THREADS``, else
    :func:`default_threads`. A bad ``--threads`` or ``$RSBENCH_THREADS`` is a :class:`ConfigError`."""
    environ = os.environ if environ is None else environ
    cpus = available_cpus()
    if option is not None:
        if not 1 <= option <= MAX_THREADS:
            raise ConfigError(f"--threads must be a positive integer of at most {MAX_THREADS} (this machine has "
                              f"{cpus} CPUs), got {option}")
        return ThreadChoice(option, "--threads", cpus)
    raw = environ.get(ENV_VAR)
    if raw is not None and raw.strip():
        value = _positive(raw)
        if value is None:
            raise ConfigError(f"${ENV_VAR}={raw!r} is not a positive integer")
        if value > MAX_THREADS:
            raise ConfigError(f"${ENV_VAR}={raw!r} is more than {MAX_THREADS} threads")
        return ThreadChoice(value, f"${ENV_VAR}", cpus)
    omp = _positive(environ.get("OMP_NUM_THREADS", ""))
    if omp is not None:
        return ThreadChoice(omp, "$OMP_NUM_THREADS", cpus)
    return ThreadChoice(default_threads(cpus), "default", cpus)


def apply_threads(threads: int) -> None:
    """Set torch's intra-op threads, and its inter-op threads while torch still allows it (before their first use)."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # inter-op pool already started in this process (e.g. a second command in tests)
        pass
