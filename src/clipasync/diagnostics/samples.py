"""Validation shared by the tail diagnostics: samples, k, top order statistics.

Pure helpers for :mod:`clipasync.diagnostics.tails`,
:mod:`clipasync.diagnostics.hill` and :mod:`clipasync.diagnostics.survival`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

#: Fewest samples any estimator here accepts (a slope needs two points above a third).
MIN_SAMPLES = 3


def as_samples(samples: npt.ArrayLike, name: str = "samples") -> FloatArray:
    """Return ``samples`` as a validated 1-D float64 array (finite, non-negative)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < MIN_SAMPLES:
        raise ConfigError(
            f"{name} must hold at least {MIN_SAMPLES} values, got {arr.size}"
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ConfigError(f"{name} must be finite, got {bad} non-finite values")
    if np.any(arr < 0.0):
        raise ConfigError(
            f"{name} must be non-negative (norms), got minimum {float(arr.min())}"
        )
    return arr


def resolve_k(k: int | None, n: int, divisor: int) -> int:
    """Return the validated number of upper order statistics.

    Args:
        k: Requested k, or ``None`` for the default ``max(10, n // divisor)``
            capped at n − 1.
        n: Number of samples.
        divisor: 1 / (default fraction of the samples in the tail).

    Raises:
        ConfigError: If ``k`` is not an integer in [2, n − 1].
    """
    if k is None:
        return min(max(10, n // divisor), n - 1)
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ConfigError(f"k must be an integer, got {k!r}")
    if not 2 <= k <= n - 1:
        raise ConfigError(f"k must satisfy 2 <= k <= n - 1 = {n - 1}, got k={k}")
    return int(k)


def top_values(arr: FloatArray, m: int) -> FloatArray:
    """Return the m largest entries of ``arr`` in decreasing order (O(n) select)."""
    part = np.partition(arr, arr.size - m)[arr.size - m :]
    out: FloatArray = np.sort(part)[::-1]
    return out


def check_positive(name: str, value: float) -> None:
    """Raise ConfigError unless ``value`` is a positive finite number."""
    if not (isinstance(value, int | float | np.floating) and math.isfinite(value)):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
