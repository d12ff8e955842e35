"""One run per report directory: an exclusive lock held while a run writes there.

Two ``clipasync run`` commands with the same ``--out`` would otherwise crash each
other: the second clears what it takes for leftovers of a killed run, which is the
first one's in-flight temporary folder. :func:`lock_out_dir` takes
``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<out>/.lock`` for as long as the run lasts;
a second run finds it taken and stops with one line naming the owner's pid. The
kernel drops the lock when its process ends, however it ends, so a crash leaves no
stale lock: the file stays (removing it would race a run that just opened it) and the
next run simply takes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from clipasync.errors import ConfigError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def lock_out_dir(out: str | Path) -> Iterator[Path]:
    """Hold the lock of report directory ``out`` (created) inside the block.

    A directory this call created is removed again when the block fails before
    anything but the lock was written into it (a config refused, a cluster that
    cannot be joined), so that a refused run leaves nothing behind.

    Raises:
        ConfigError: If another process holds it, or ``out`` cannot be created.
    """
    d = Path(out)
    created = not d.exists()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ConfigError(
            f"cannot use {d} as a report directory: {exc.strerror}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise ConfigError(
            f"{d} is in use by another run (pid {owner}); wait for it to finish or "
            "choose another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield d
    except BaseException:
        # A run refused before it wrote anything leaves no directory behind.
        with contextlib.suppress(OSError):
            if created and [p.name for p in d.iterdir()] == [LOCK_FILE]:
                (d / LOCK_FILE).unlink()
                d.rmdir()
        raise
    finally:
        os.close(fd)  # releases the lock
