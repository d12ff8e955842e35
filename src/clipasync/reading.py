"""Reading a run directory's records as untrusted data, within bounds.

Result directories are what people share, so every reader here assumes the file
may be hostile or broken: at most :func:`max_read_bytes` come out of one file
(``CLIPASYNC_MAX_READ_MB``, default 256 MiB, counted after decompression; a
``.gz`` file is inflated once, without keeping it, before any row is parsed), a
corrupt, truncated, non-UTF-8 or deeply nested file is one
:class:`~clipasync.errors.ConfigError`, and :func:`inside` keeps every path read
from a directory within it. :mod:`clipasync.io` writes these files (and re-exports
the readers).
"""

from __future__ import annotations

import array
import csv
import gzip
import io
import json
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from clipasync.errors import ConfigError


def _is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


#: Default cap on the bytes read from one file (after decompression), in MiB.
DEFAULT_MAX_READ_MB = 256
MAX_READ_ENV = "CLIPASYNC_MAX_READ_MB"


def max_read_bytes() -> int:
    """The cap on the bytes read from one record file (``CLIPASYNC_MAX_READ_MB``)."""
    text = os.environ.get(MAX_READ_ENV, "")
    try:
        mb = float(text) if text else DEFAULT_MAX_READ_MB
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and mb > 0):
        raise ConfigError(f"{MAX_READ_ENV}={text!r}: must be a number of MiB > 0")
    return int(mb * (1 << 20))


def _too_large(path: Path | str, cap: int) -> ConfigError:
    return ConfigError(
        f"{path}: more than {cap >> 20} MiB once read (the limit; set "
        f"{MAX_READ_ENV} to raise it)"
    )


class _Capped(io.RawIOBase):
    """A binary reader that fails once more than ``cap`` bytes came through."""

    def __init__(self, inner: IO[bytes], raw: IO[bytes], path: Path, cap: int) -> None:
        super().__init__()
        self._inner, self._raw, self._path = inner, raw, path
        self._cap, self._seen = cap, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._inner.read(min(len(view), 1 << 16))
        except (OSError, EOFError, zlib.error) as exc:
            raise ConfigError(f"{self._path}: corrupt or truncated ({exc})") from None
        self._seen += len(data)
        if self._seen > self._cap:
            raise _too_large(self._path, self._cap)
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        self._raw.close()
        super().close()


def _check_inflated(path: Path, cap: int) -> None:
    """Inflate ``path`` once without keeping it (zlib runs at hundreds of MB/s):
    a bomb or a truncated stream is refused before anyone parses a row of it."""
    seen = 0
    try:
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read(1 << 20):
                seen += len(chunk)
                if seen > cap:
                    raise _too_large(path, cap)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError | IsADirectoryError):
            raise
        raise ConfigError(f"{path}: corrupt or truncated ({exc})") from None


def inside(root: str | Path, relative: Any, what: str = "path") -> Path:
    """``root / relative``, refusing a name that leaves ``root`` (``..``, absolute,
    a link out) or is not a plain relative string.

    Raises:
        ConfigError: Naming ``what`` and the bad value.
    """
    base = Path(root)
    bad = ConfigError(f"{base}: {what} {str(relative)[:80]!r} points outside {base}")
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise bad
    if Path(relative).is_absolute():
        raise bad
    target = base / relative
    try:
        target.resolve().relative_to(base.resolve())
    except (ValueError, OSError, RuntimeError):
        raise bad from None
    return target


def open_text(path: str | Path) -> IO[str]:
    """Open a file written here for reading as UTF-8 text (``.gz``: decompressed).

    At most :func:`max_read_bytes` are read (after decompression); a larger,
    corrupt or truncated file raises :class:`ConfigError` while it is read.
    """
    p = Path(path)
    cap = max_read_bytes()
    if _is_gzip(p):
        _check_inflated(p, cap)
    raw: IO[bytes] = open(p, "rb")  # noqa: SIM115 - the returned handle closes it
    inner: Any = gzip.GzipFile(fileobj=raw, mode="rb") if _is_gzip(p) else raw
    capped = io.BufferedReader(_Capped(inner, raw, p, cap))
    return io.TextIOWrapper(capped, encoding="utf-8", newline="")


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file of a run directory, at most :func:`max_read_bytes`.

    Raises:
        ConfigError: If it is larger, not UTF-8, not a file, or unreadable.
    """
    p = Path(path)
    try:
        with open_text(p) as fh:
            return fh.read()
    except (UnicodeDecodeError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{p}: cannot read it ({reason})") from None


def read_json(path: str | Path) -> Any:
    """Read a JSON file written by :func:`write_json_atomic`.

    Raises:
        ConfigError: If it is not UTF-8 JSON, nested absurdly deep, or larger than
            :func:`max_read_bytes` (``FileNotFoundError`` and ``OSError`` pass).
    """
    p = Path(path)
    cap = max_read_bytes()
    if p.is_file() and p.stat().st_size > cap:
        raise _too_large(p, cap)
    try:
        with open(p, encoding="utf-8") as fh:
            return json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise ConfigError(f"{p}: not valid JSON ({detail})") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a JSON file") from None


_BOOLEANS = {"True": 1.0, "False": 0.0}  # booleans of older records (now 0/1)


def _number(cell: str) -> float:
    """A cell as a float: empty → NaN (a value not recorded there)."""
    if not cell:
        return math.nan
    b = _BOOLEANS.get(cell)
    return float(cell) if b is None else b


def read_columns(
    path: str | Path, require: Sequence[str] = ()
) -> dict[str, np.ndarray[Any, Any]]:
    """Read a CSV written by :func:`write_csv_atomic` (``.gz`` too) as float columns.

    Empty cells become NaN and ``True``/``False`` become 1/0. Anything else that is
    not a number, or a row of the wrong length, means the file is not one of ours
    (or was edited by hand) and raises instead of turning silently into NaN.

    Args:
        path: The CSV (``.gz``: compressed).
        require: Columns that must be present.

    Raises:
        ConfigError: Naming the file, line and column of the first bad cell, or a
            required column that is missing.
    """
    cells = array.array("d")  # streamed: memory ~ 8 bytes per cell, not per row
    header: list[str] = []
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            for i, row in enumerate(reader):
                cells.extend(_row(path, header, i, row))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: not a CSV record ({exc!s:.80})") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a CSV file") from None
    missing = [name for name in require if name not in header]
    if missing:
        raise ConfigError(f"{path}: no column {', '.join(map(repr, missing))}")
    table = np.frombuffer(cells, dtype=np.float64).reshape(-1, len(header) or 1)
    return {name: table[:, j].copy() for j, name in enumerate(header)}


def _row(path: str | Path, header: list[str], i: int, row: list[str]) -> list[float]:
    if len(row) != len(header):
        raise ConfigError(
            f"{path}: line {i + 2} has {len(row)} cells, the header {len(header)}"
        )
    try:
        return [_number(cell) for cell in row]
    except ValueError:
        j = next(j for j, c in enumerate(row) if not _is_number(c))
        raise ConfigError(
            f"{path}: line {i + 2}, column {header[j]!r}: not a number: {row[j][:40]!r}"
        ) from None


def _is_number(cell: str) -> bool:
    try:
        _number(cell)
    except ValueError:
        return False
    return True
