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
file beyond :func:`max_read_bytes` (``CLIPASYNC_MAX_READ_MB``, default 256 MiB),
and :func:`inside` keeps every path read from it within it.
"""

from __future__ import annotations

import array
import contextlib
import csv
import gzip
import io
import json
import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from clipasync.errors import ConfigError

#: Prefix of temporary files and directories; readers skip names that start with it.
TMP_PREFIX = ".tmp-"
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


def _current_umask() -> int:
    """The process umask, read without changing it (Linux), else set and restored."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
