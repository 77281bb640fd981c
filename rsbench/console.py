"""One shared rich console, so output can be captured and styled consistently."""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False)
