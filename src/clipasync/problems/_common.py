"""Validation, sampling and accessor helpers shared by the concrete problems.

Kept private: the public surface is the problem classes. Every check raises
:class:`~clipasync.errors.ConfigError` with a one-line message that names the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.types import Vector

#: Integer index array (rows of a data matrix).
Indices = npt.NDArray[np.intp]


class ShardsAndStartMixin:
    """The ``num_shards``, ``partition`` and ``initial_point`` members of a problem.

    Every concrete problem stores its validated shards and its starting point the
    same way, so the three read-only accessors live here once. A subclass must set
    ``_shards`` (the result of :func:`check_partition`) and ``_x0`` (a read-only
    x_0, see :func:`freeze`) in its constructor; what x_0 is stays documented on the
    subclass.
    """

    _shards: tuple[Indices, ...] | None
    _x0: Vector

    @property
    def num_shards(self) -> int | None:
        """Number of per-worker shards, or ``None`` when not partitioned."""
        return None if self._shards is None else len(self._shards)

    @property
    def partition(self) -> tuple[Indices, ...] | None:
        """The per-worker shards (read-only training-row index arrays), if any."""
        return self._shards

    def initial_point(self) -> Vector:
        """Return x_0 as a fresh, writable copy of the stored read-only array."""
        # A copy, so that an algorithm updating x in place never alters x_0.
        return self._x0.copy()


class MinibatchMixin(ShardsAndStartMixin):
    """Minibatch index draws shared by the numpy problems (least squares, robust
    regression): ``batch_size`` rows of the whole set with replacement on the hot
    path (one ``rng.integers`` call), else :func:`sample_indices` from a worker's
    shard or without replacement."""

    num_samples: int
    batch_size: int
    replace: bool

    def minibatch(self, rng: np.random.Generator, worker: int | None) -> Indices:
        """Return the row indices of one minibatch, drawn with ``rng``."""
        if self._shards is None and self.replace:  # hot path: skip the helper
            return rng.integers(0, self.num_samples, size=self.batch_size)
        return sample_indices(
            rng, self.num_samples, self.batch_size, self._shards, worker, self.replace
        )


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int if it is a positive integer, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_nonnegative_float(name: str, value: object) -> float:
    """Return ``value`` as a float if it is finite and >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
    out = float(value)
    if not np.isfinite(out) or out < 0.0:
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
    return out


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise."""
    out = check_nonnegative_float(name, value)
    if out == 0.0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return out


def check_batch_size(batch_size: object, num_samples: int) -> int:
    """Validate a minibatch size against the number of training samples."""
    b = check_positive_int("batch_size", batch_size)
    if b > num_samples:
        raise ConfigError(
            f"batch_size must be at most the number of training samples "
            f"({num_samples}), got {b}"
        )
    return b


def check_design(
    a: npt.ArrayLike, b: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return float64 copies of a design ``a`` (N × d, N ≥ 1) and target ``b``
    (length N), else raise a one-line ``ConfigError`` naming both shapes."""
    a64 = np.array(a, dtype=np.float64)
    b64 = np.array(b, dtype=np.float64)
    if a64.ndim != 2 or b64.shape != (a64.shape[0],) or a64.shape[0] == 0:
        raise ConfigError(
            f"a must be N x d and b of length N, got shapes {a64.shape} and {b64.shape}"
        )
    return a64, b64


def check_partition(
    partition: Sequence[npt.ArrayLike] | None, num_samples: int
) -> tuple[Indices, ...] | None:
    """Validate per-worker shards and return them as read-only ``intp`` arrays.

    Shards must be non-empty 1-D integer arrays of training-row indices in
    ``[0, num_samples)``. They may overlap (some federated splits duplicate data);
    they need not cover every row.
    """
    if partition is None:
        return None
    if isinstance(partition, np.ndarray) or len(partition) == 0:
        raise ConfigError(
            "partition must be a non-empty list of per-worker index arrays, "
            f"got {type(partition).__name__} of length {len(partition)}"
        )
    shards: list[Indices] = []
    for i, shard in enumerate(partition):
        arr = np.asarray(shard)
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise ConfigError(
                f"partition[{i}] must be a non-empty 1-D integer array, got "
                f"shape {arr.shape} dtype {arr.dtype}"
            )
        if arr.min() < 0 or arr.max() >= num_samples:
            raise ConfigError(
                f"partition[{i}] has indices outside [0, {num_samples}): "
                f"min {arr.min()}, max {arr.max()}"
            )
        out = arr.astype(np.intp, copy=True)
        out.flags.writeable = False
        shards.append(out)
    return tuple(shards)


def check_worker(worker: int | None, shards: tuple[Indices, ...] | None) -> None:
    """Raise if ``worker`` is not a valid shard number (only when partitioned)."""
    if shards is None or worker is None:
        return
    if not 0 <= worker < len(shards):
        raise ConfigError(
            f"worker must be in [0, {len(shards)}) for a problem with "
            f"{len(shards)} shards, got {worker}"
        )


def sample_indices(
    rng: np.random.Generator,
    num_samples: int,
    batch_size: int,
    shards: tuple[Indices, ...] | None,
    worker: int | None,
    replace: bool,
) -> Indices:
    """Draw one minibatch of row indices.

    With a partition and a ``worker``, rows come from that worker's shard only;
    a partitioned problem called with ``worker=None`` samples the whole training
    set. Sampling is uniform, with replacement (``rng.integers``, one call) or
    without (``rng.choice(..., replace=False)``); both make the minibatch mean
    an unbiased estimate of the mean over the sampled population. Without
    replacement the batch is capped at the shard size.
    """
    check_worker(worker, shards)
    if shards is None or worker is None:
        if replace:
            return rng.integers(0, num_samples, size=batch_size)
        picked: Indices = rng.choice(num_samples, size=batch_size, replace=False)
        return picked
    shard = shards[worker]
    if replace:
        return shard[rng.integers(0, shard.shape[0], size=batch_size)]
    size = min(batch_size, shard.shape[0])
    rows: Indices = rng.choice(shard.shape[0], size=size, replace=False)
    return shard[rows]


def freeze(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Mark ``array`` read-only (problem data must never change after init)."""
    array.flags.writeable = False
    return array
