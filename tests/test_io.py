"""Atomic files and columns (clipasync.io): atomic directories, numeric cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.experiments.rundir import (
    ARRIVALS_FILE,
)
from clipasync.io import atomic_dir, read_columns, write_csv_atomic


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
