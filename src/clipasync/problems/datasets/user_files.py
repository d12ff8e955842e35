"""The user's own data files as ``(features, targets)`` arrays: ``.npz``, ``.csv``,
``.parquet``.

A data entry of a config is a path or a mapping ``{path: ..., target: ...,
x: ..., y: ...}``:

* ``.npz``: the arrays named ``x`` and ``y`` (default: the first of the pairs
  ``(x, y)``, ``(X, y)``, ``(inputs, targets)``, ``(features, labels)`` present).
* ``.csv`` (a header row) and ``.parquet``: every column numeric; ``target``
  names the target column (default: the last one), the others are the features
  in file order. ``.parquet`` needs pyarrow (``pip install 'clipasync[parquet]'``).

A relative path resolves against ``root`` (the config file's folder); where that
folder does not exist (a Ray node that received it as its ``working_dir``) it
resolves against the working directory. Files are only read, never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

Arrays = tuple[npt.NDArray[Any], npt.NDArray[Any]]

#: Key pairs tried, in order, in an ``.npz`` without explicit ``x``/``y``.
NPZ_KEYS = (("x", "y"), ("X", "y"), ("inputs", "targets"), ("features", "labels"))
SUFFIXES = (".npz", ".csv", ".parquet")


def resolve_path(path: str, root: str | None, field: str) -> Path:
    """Return the file ``path`` names (relative: against ``root``, else the cwd).

    Raises:
        ConfigError: If the file does not exist (the message says where it looked).
    """
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else []
    if not p.is_absolute():
        if root and Path(root).is_dir():
            candidates.append(Path(root) / p)
        candidates.append(Path.cwd() / p)
    for c in candidates:
        if c.is_file():
            return c
    where = ", ".join(str(c.parent) for c in candidates)
    raise ConfigError(f"{field}: data file not found: {path} (looked in {where})")


def _npz(path: Path, x: str | None, y: str | None, field: str) -> Arrays:
    with np.load(path, allow_pickle=False) as data:
        names = list(data.files)
        pairs = [(x, y)] if x or y else [k for k in NPZ_KEYS if set(k) <= set(names)]
        if not pairs or pairs[0][0] not in names or pairs[0][1] not in names:
            want = f"{x!r} and {y!r}" if x or y else "x and y (or X/y, inputs/targets)"
            raise ConfigError(
                f"{field}: {path.name} holds arrays {names}; expected {want} "
                "(set x: and y: to name them)"
            )
        kx, ky = pairs[0]
        return np.asarray(data[kx]), np.asarray(data[ky])


def _table(path: Path, target: str | None, field: str) -> Arrays:
    import pandas as pd  # type: ignore[import-untyped]

    if path.suffix == ".csv":
        frame = pd.read_csv(path)
    else:
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise ConfigError(
                f"{field}: reading {path.name} needs pyarrow "
                "(pip install 'clipasync[parquet]')"
            ) from None
    columns = [str(c) for c in frame.columns]
    if len(columns) < 2:
        raise ConfigError(
            f"{field}: {path.name} has {len(columns)} column(s); need features and "
            "a target"
        )
    name = target if target is not None else columns[-1]
    if name not in columns:
        raise ConfigError(
            f"{field}: {path.name} has no column {name!r}; columns: "
            f"{', '.join(columns[:8])}{', ...' if len(columns) > 8 else ''}"
        )
    frame.columns = columns
    features = frame.drop(columns=[name])
    bad = [
        c for c in features.columns if not np.issubdtype(features[c].dtype, np.number)
    ]
    if bad or not np.issubdtype(frame[name].dtype, np.number):
        col = bad[0] if bad else name
        raise ConfigError(f"{field}: column {col!r} of {path.name} is not numeric")
    return features.to_numpy(), frame[name].to_numpy()


def read_arrays(spec: str | Mapping[str, Any], root: str | None, field: str) -> Arrays:
    """Return ``(features, targets)`` of a data entry (a path or ``{path, ...}``).

    Raises:
        ConfigError: Missing file, unknown format or keys, a non-numeric column,
            or features and targets of different lengths.
    """
    opts: dict[str, Any] = {"path": spec} if isinstance(spec, str) else dict(spec)
    path = opts.pop("path", None)
    target, x, y = opts.pop("target", None), opts.pop("x", None), opts.pop("y", None)
    if not isinstance(path, str) or opts:
        extra = f"unknown key {sorted(opts)[0]!r}" if opts else "no path"
        raise ConfigError(
            f"{field}: {extra}; expected a path or {{path, target, x, y}}"
        )
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(
            f"{field}: unknown data format {suffix or path!r}; use one of "
            f"{', '.join(SUFFIXES)}, a dataset: or a function: entry"
        )
    file = resolve_path(path, root, field)
    if suffix == ".npz":
        feats, targets = _npz(file, x, y, field)
    else:
        feats, targets = _table(file, target, field)
    if feats.ndim < 1 or targets.ndim < 1 or len(feats) != len(targets):
        raise ConfigError(
            f"{field}: {file.name} has {len(feats)} feature rows and "
            f"{len(targets)} targets"
        )
    return feats, targets
