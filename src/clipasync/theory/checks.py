"""Input checks shared by the theory calculators (one-line ``ConfigError``)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

# ---------------------------------------------------------------------------
# validation helpers


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return v


def _positive(name: str, value: float) -> float:
    v = _finite(name, value)
    if v <= 0.0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return v


def _non_negative(name: str, value: float) -> float:
    v = _finite(name, value)
    if v < 0.0:
        raise ConfigError(f"{name} must be non-negative, got {value}")
    return v


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _compute_times(compute_times: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return the validated compute times sorted ascending (τ_1 <= ... <= τ_n)."""
    arr = np.asarray(compute_times, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(
            f"compute_times must be a non-empty 1-D sequence, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0):
        raise ConfigError(
            f"compute_times must be positive and finite, got {arr.tolist()}"
        )
    return np.sort(arr)


# ---------------------------------------------------------------------------
# fixed computation model
