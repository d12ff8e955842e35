"""The error convention of every command: ``error: <one line>`` and exit status 2.

A library error (:class:`~clipasync.errors.ClipasyncError`: a bad config, a missing
run directory, a diverged checkpoint, ...) is printed on stderr as one line, its
whitespace collapsed, and the command exits with status 2; any other exception is a
bug and keeps its traceback. :mod:`clipasync.cli.app` and
:mod:`clipasync.cli.diagnostics` both wrap their work in :func:`guard`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from clipasync.errors import ClipasyncError

T = TypeVar("T")


def guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; a library error becomes ``error: <one line>`` and exit code 2."""
    try:
        return fn()
    except ClipasyncError as exc:
        msg = " ".join(str(exc).split())
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(2) from None
