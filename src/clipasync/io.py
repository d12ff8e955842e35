"""Atomic writes of run records: a file or a directory appears whole or not at all.

Every result file is written to a temporary sibling and then moved into place with
``os.replace``, which is atomic on POSIX file systems. A run killed mid-way therefore
leaves either nothing or a ``.tmp-*`` leftover that readers ignore, never a
half-written ``summary.json``. Records are CSV, JSON, YAML or text (never pickle), so
``pandas.read_csv`` loads an arrival table in one line. A destination ending in ``.gz``
is written gzip-compressed (deterministically: no time stamp or file name in the
header) and read back transparently by :func:`read_columns` and ``pandas.read_csv``.

Files get the modes the umask allows (``0644`` and ``0755`` under the usual
``022``), like any file the user writes, although the temporary sibling starts
private. A results directory is data that others send: reading never inflates a
file beyond :func:`~clipasync.reading.max_read_bytes` (``CLIPASYNC_MAX_READ_MB``,
default 256 MiB), and :func:`~clipasync.reading.inside` keeps every path read from
it within it (:mod:`clipasync.reading`; re-exported here).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from clipasync.reading import (
    DEFAULT_MAX_READ_MB,
    MAX_READ_ENV,
    inside,
    max_read_bytes,
    open_text,
    read_columns,
    read_json,
    read_text,
)

#: Prefix of temporary files and directories; readers skip names that start with it.
TMP_PREFIX = ".tmp-"


def _current_umask() -> int:
    """The process umask, read without changing it (Linux), else set and restored."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    # Makes the rename durable across a power loss; harmless where unsupported.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


@contextlib.contextmanager
def _atomic_text(dest: Path) -> Iterator[IO[str]]:
    """Yield a UTF-8 text handle whose content replaces ``dest`` atomically on exit.

    The text goes to a temporary sibling that is fsynced and renamed over ``dest``;
    on an exception the temporary file is removed and ``dest`` is untouched. A
    ``.gz`` destination is gzip-compressed with ``mtime=0`` and an empty file name
    in the header, so the same text always gives the same bytes.
    """
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=dest.parent)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes it 0600
        with os.fdopen(fd, "wb") as raw:
            if _is_gzip(dest):
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                # Closing the wrapper closes ``gz`` (writes the trailer), not ``raw``.
                with io.TextIOWrapper(gz, encoding="utf-8", newline="") as fh:
                    yield fh
            else:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                try:
                    yield text
                finally:
                    text.detach()  # flushes; leaves ``raw`` open for the fsync below
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(dest.parent)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same dir + rename).

    Args:
        path: Destination file; its parent directory must exist. A ``.gz`` suffix
            writes it gzip-compressed.
        text: Content (UTF-8).

    Returns:
        The destination path.
    """
    dest = Path(path)
    with _atomic_text(dest) as fh:
        fh.write(text)
    return dest


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _finite(obj: Any) -> Any:
    # JSON has no NaN/Inf: write them as null so any JSON reader accepts the file.
    if isinstance(obj, float | np.floating) and not math.isfinite(float(obj)):
        return None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically; NaN and Inf become ``null``."""
    text = json.dumps(_finite(data), indent=2, sort_keys=True, default=_json_default)
    return write_text_atomic(path, text + "\n")


def _cell(value: Any) -> str:
    if value is None:  # not recorded: an empty cell, read back as NaN
        return ""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def write_csv_atomic(
    path: str | Path, columns: Mapping[str, Sequence[Any] | np.ndarray[Any, Any]]
) -> Path:
    """Write equal-length columns as a CSV with a header row, atomically.

    Floats are written with ``repr`` (round-trip exact); booleans as 0/1.

    Args:
        path: Destination file; a ``.gz`` suffix writes it gzip-compressed (same
            columns, same bytes).
        columns: Column name → values (lists or 1-D numpy arrays).

    Raises:
        ValueError: If the columns have different lengths.
    """
    names = list(columns)
    lengths = {len(columns[n]) for n in names}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    cols = [
        c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns.values()
    ]
    dest = Path(path)
    with _atomic_text(dest) as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in zip(*cols, strict=True):
            writer.writerow([_cell(v) for v in row])
    return dest


def write_rows_csv_atomic(
    path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()
) -> Path:
    """Write a list of dicts as CSV (union of keys, missing cells empty), atomically."""
    names = list(columns)
    for row in rows:
        names.extend(k for k in row if k not in names)
    data = {n: ["" if r.get(n) is None else r[n] for r in rows] for n in names}
    return write_csv_atomic(path, data)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling and move it to ``path`` on success.

    Any existing ``path`` (e.g. a partial directory left by an older version) is
    replaced. On an exception the temporary directory is removed and ``path`` is left
    untouched.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_dir(root / "run") as tmp:
        ...     _ = (tmp / "summary.json").write_text("{}")
        >>> sorted(p.name for p in (root / "run").iterdir())
        ['summary.json']
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + dest.name + "-", dir=dest.parent))
    try:
        os.chmod(tmp, 0o777 & ~_current_umask())  # mkdtemp makes it 0700
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        # os.replace cannot overwrite a non-empty directory: move the old one aside
        # first, so the final rename is still the single visible step.
        old = dest.parent / f"{TMP_PREFIX}old-{dest.name}-{os.getpid()}"
        os.replace(dest, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def remove_leftovers(directory: str | Path) -> int:
    """Delete ``.tmp-*`` entries left by killed writers; return how many went."""
    d = Path(directory)
    if not d.is_dir():
        return 0
    count = 0
    for entry in d.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            count += 1
    return count


__all__ = [
    "DEFAULT_MAX_READ_MB",
    "MAX_READ_ENV",
    "TMP_PREFIX",
    "atomic_dir",
    "inside",
    "max_read_bytes",
    "open_text",
    "read_columns",
    "read_json",
    "read_text",
    "remove_leftovers",
    "write_csv_atomic",
    "write_json_atomic",
    "write_rows_csv_atomic",
    "write_text_atomic",
]
