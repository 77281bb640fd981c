"""User-facing errors.

Anything a user can cause (a bad path, a typo'd name, a broken file) raises
:class:`RsbenchError`. The CLI prints its message on one line and exits non-zero,
without a traceback; library callers get an ordinary exception.
"""

from __future__ import annotations


class RsbenchError(Exception):
    """An error caused by the user's input, reported as a one-line message."""

    exit_code: int = 2


class DataError(RsbenchError):
    """A dataset folder or file is missing, unreadable or malformed."""


class ConfigError(RsbenchError):
    """A card, option or name is unknown or has the wrong type."""
