"""The error convention of every command: ``error: <one line>`` and exit status 2.

A library error (:class:`~clipasync.errors.ClipasyncError`: a bad config, a missing
run directory, a diverged checkpoint, ...) is printed on stderr as one line, its
whitespace collapsed, and the command exits with status 2; any other exception is a
bug and keeps its traceback. Ctrl-C prints one line saying where the results so far
are and how to continue, and exits with status 130 (128 + SIGINT).
:mod:`clipasync.cli.app` and :mod:`clipasync.cli.diagnostics` both wrap their work
in :func:`guard`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import typer
import typer._click.exceptions as click_exceptions
import typer.rich_utils as rich_utils

from clipasync.errors import ClipasyncError, ConfigError

T = TypeVar("T")
#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: Longest error line printed (a 30-million-entry list is not a message).
MAX_MESSAGE = 500


def guard(fn: Callable[[], T], results: Callable[[], Path | None] | None = None) -> T:
    """Run ``fn``; a library error becomes ``error: <one line>`` and exit code 2.

    Args:
        fn: The command's work.
        results: Where the command writes its results (``None`` while unknown):
            named on Ctrl-C, with the command that continues.
    """
    try:
        return fn()
    except ClipasyncError as exc:
        msg = " ".join(str(exc).split())
        if len(msg) > MAX_MESSAGE:
            msg = msg[: MAX_MESSAGE - 3] + "..."
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(2) from None
    except MemoryError:
        typer.echo(
            "error: out of memory: the input asks for more than this process may "
            "allocate (a problem size, a grid or a file too large?)",
            err=True,
        )
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        where = results() if results is not None else None
        if where is None:
            typer.echo("interrupted: nothing was written", err=True)
        else:
            typer.echo(
                f"interrupted: finished runs are kept in {where}; run the same "
                f"command again (same --out, or `clipasync resume {where}` for a Ray "
                "run) to continue from there",
                err=True,
            )
        raise typer.Exit(INTERRUPTED) from None


def one_line_usage_errors() -> None:
    """Print a usage error (``--workers 0``, an unknown option) as one ``error:``
    line too, instead of typer's framed panel or click's usage block.

    Typer offers no hook for this: both of its printers are replaced here, once,
    by the same one-line printer (the exit status stays click's, 2).
    """

    def show(exc: Any, file: Any = None) -> None:
        msg = " ".join(str(exc.format_message()).split())
        typer.echo(f"error: {msg[:MAX_MESSAGE]}", err=True)

    click_exceptions.ClickException.show = show  # type: ignore[method-assign,assignment]
    rich_utils.rich_format_error = show  # type: ignore[assignment]


def check_run_options(
    backend: str,
    out: str | None,
    ray_only: Mapping[str, Any],
    sim_only: Mapping[str, Any] | None = None,
) -> None:
    """Refuse ``run`` options that cannot do what they say (before any work).

    Args:
        backend: ``sim`` or ``ray``.
        out: The ``--out`` text as given (``""`` is refused, not the current folder).
        ray_only: Option name → value given (``None``: not given) of the options
            that only the Ray backend reads.
        sim_only: The same for the options that only the simulator reads.

    Raises:
        ConfigError: An unknown backend, an empty ``--out`` or one that is a file,
            a Ray option given with ``--backend sim``, or a simulator option with
            ``--backend ray``.
    """
    if backend not in ("sim", "ray"):
        raise ConfigError(f"unknown backend {backend!r}; choose one of: sim, ray")
    if out is not None:
        if not out.strip():
            raise ConfigError("--out is empty: name a report directory")
        if Path(out).exists() and not Path(out).is_dir():
            raise ConfigError(f"--out {out}: exists and is not a directory")
    for only, options in (("ray", ray_only), ("sim", sim_only or {})):
        given = [name for name, value in options.items() if value is not None]
        if given and backend != only:
            raise ConfigError(
                f"{', '.join(given)}: only with --backend {only} (the {backend} "
                f"backend ignores it); drop it or use --backend {only}"
            )
