"""The ``clipasync`` command line (floor 6)."""

from clipasync.cli.app import app, main

__all__ = ["app", "main"]
