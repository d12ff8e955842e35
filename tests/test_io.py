"""Atomic files and columns (clipasync.io): atomic directories, numeric cells."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.experiments.rundir import (
    ARRIVALS_FILE,
)
from clipasync.io import (
    atomic_dir,
    inside,
    read_columns,
    read_json,
    write_csv_atomic,
    write_text_atomic,
)


def test_atomic_dir_leaves_nothing_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "run"
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        write_csv_atomic(tmp / ARRIVALS_FILE, {"time": [1.0, 2.0]})
        raise RuntimeError("killed")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_read_columns_rejects_cells_that_are_not_numbers(tmp_path: Path) -> None:
    good = tmp_path / "good.csv.gz"
    write_csv_atomic(good, {"time": [0.5, 1.5], "ok": [True, False], "m": [None, 2]})
    cols = read_columns(good)
    np.testing.assert_array_equal(cols["time"], [0.5, 1.5])
    np.testing.assert_array_equal(cols["ok"], [1.0, 0.0])
    assert np.isnan(cols["m"][0]) and cols["m"][1] == 2.0  # empty cell: not recorded
    bad = tmp_path / "bad.csv"
    bad.write_text("time,worker\n0.5,1\n0.7,oops\n")
    with pytest.raises(ConfigError, match=r"line 3, column 'worker': not a number"):
        read_columns(bad)
    short = tmp_path / "short.csv"
    short.write_text("time,worker\n0.5\n")
    with pytest.raises(ConfigError, match="line 2 has 1 cells, the header 2"):
        read_columns(short)


def test_files_and_run_directories_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        f = write_text_atomic(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "run") as d:
            write_text_atomic(d / "b.txt", "y")
        os.umask(0o027)
        g = write_text_atomic(tmp_path / "c.txt", "z")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "run" / "b.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE(g.stat().st_mode) == 0o640


def test_a_gzip_bomb_is_refused_at_the_read_limit(tmp_path, monkeypatch):
    path = tmp_path / "arrivals.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("a,b\n" + "1,2\n" * 600_000)  # 2.4 MB inflated, ~10 kB on disk
    monkeypatch.setenv("CLIPASYNC_MAX_READ_MB", "1")
    with pytest.raises(ConfigError, match=r"more than 1 MiB.*CLIPASYNC_MAX_READ_MB"):
        read_columns(path)
    monkeypatch.setenv("CLIPASYNC_MAX_READ_MB", "4")
    assert read_columns(path)["b"].sum() == 1_200_000


def test_a_truncated_or_foreign_file_is_one_clear_error(tmp_path):
    good = write_csv_atomic(tmp_path / "x.csv.gz", {"a": [1.0] * 1000})
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(good.read_bytes()[:-12])
    with pytest.raises(ConfigError, match="corrupt or truncated"):
        read_columns(cut)
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ConfigError, match="corrupt or truncated"):
        read_columns(tmp_path / "bad.csv.gz")
    (tmp_path / "bin.csv").write_bytes(b"a\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not a CSV record"):
        read_columns(tmp_path / "bin.csv")
    (tmp_path / "j.json").write_text("{" * 100_000)
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_json(tmp_path / "j.json")


def test_inside_keeps_paths_within_the_directory(tmp_path):
    (tmp_path / "runs").mkdir()
    assert inside(tmp_path, "runs/r1") == tmp_path / "runs" / "r1"
    (tmp_path / "link").symlink_to("/etc")
    for bad in ("../x", "/etc/passwd", "runs/../../x", "link/passwd", "", 3, None):
        with pytest.raises(ConfigError, match="points outside"):
            inside(tmp_path, bad)
