"""The ``rsbench`` command line: the Typer app (``app.py``) and one module per command group.

Each command module parses, validates (``rsbench.validate``), calls the library and prints; importing
any of them stays cheap (no torch), so ``--help`` answers at once.
"""

from rsbench.cli.app import app, main

__all__ = ["app", "main"]
