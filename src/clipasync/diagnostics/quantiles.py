"""Quantiles over seeds with censored runs: the numbers of a high-probability claim.

A guarantee "with probability at least 1 − δ" is, to a user, a statement about the
bad tail of runs: the (1 − δ)-quantile over seeds of the time to reach a target, or
of the paper's accuracy measure, the average gradient norm
(1/T) Σ_{t<T} ‖∇f(x_t)‖ (Erickson & Johansson, 2026, Thm 4.3).

Censoring convention. A run that never reached the target has no time to target.
It is recorded as ``None``, NaN or +inf and is **treated as +inf**: it is slower
than every run that did reach it. The empirical q-quantile is numpy's default
(``method="linear"``: position h = q(n − 1) in the sorted sample, linear
interpolation between its floor and ceiling neighbours). When either neighbour is
censored the quantile is +inf, reported as "not reached": the data only say the
quantile exceeds the time budget. For finite inputs every value equals
``numpy.quantile``'s.

Which levels are meaningful. With n seeds the q-quantile is only resolved when at
least one run lies beyond it, n(1 − q) >= 1: the median needs 2 seeds, the 90 %
quantile 10, the 99 % quantile 100. :func:`resolvable_levels` applies that rule.

Everything here is pure (no I/O).

References:
    Erickson, Johansson. "Clipping makes distributed and federated asynchronous SGD
    robust to stragglers." arXiv:2606.13287, 2026.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

#: The levels a high-probability report asks for (median, 90 %, 99 %).
DEFAULT_LEVELS = (0.5, 0.9, 0.99)


def as_censored(values: Iterable[float | None]) -> FloatArray:
    """Return ``values`` as a float array with every censored entry set to +inf.

    ``None``, NaN and +inf all mean "never reached" (censored).

    Raises:
        ConfigError: On a value of −inf.

    Examples:
        >>> as_censored([1.0, None, float("nan"), 2.0]).tolist()
        [1.0, inf, inf, 2.0]
    """
    out = np.array(
        [math.inf if v is None else float(v) for v in values], dtype=np.float64
    )
    out[np.isnan(out)] = math.inf
    if np.any(out == -math.inf):
        raise ConfigError("values must not be -inf")
    return out


def censored_quantile(values: Iterable[float | None], q: float) -> float:
    """Return the empirical q-quantile, +inf when it falls among censored runs.

    With the sorted sample y_0 <= ... <= y_{n−1} (censored runs last, as +inf) and
    h = q(n − 1):

    .. math:: Q(q) = y_{\\lfloor h\\rfloor} + (h - \\lfloor h\\rfloor)
        (y_{\\lceil h\\rceil} - y_{\\lfloor h\\rfloor}),

    numpy's default ``linear`` method, and Q(q) = +inf if y_{⌈h⌉} is censored.

    Args:
        values: Observations; ``None``/NaN/+inf are censored (see module docstring).
        q: Level in [0, 1].

    Returns:
        The quantile (``inf``: "not reached").

    Raises:
        ConfigError: If ``values`` is empty or ``q`` is outside [0, 1].

    Examples:
        >>> censored_quantile([3.0, 1.0, 2.0, 4.0], 0.5)  # = numpy.quantile
        2.5
        >>> censored_quantile([3.0, 1.0, None, 4.0], 0.5), censored_quantile(
        ...     [3.0, 1.0, None, 4.0], 0.9)
        (3.5, inf)
        >>> censored_quantile([1.0, 2.0, None], 0.5)
        2.0
    """
    arr = np.sort(as_censored(values))
    if arr.size == 0:
        raise ConfigError("cannot take a quantile of no values")
    if not (isinstance(q, int | float) and 0.0 <= q <= 1.0):
        raise ConfigError(f"quantile level must lie in [0, 1], got {q!r}")
    h = q * (arr.size - 1)
    if not math.isfinite(arr[math.ceil(h)]):
        return math.inf
    if h == math.floor(h):
        # On a sample point: numpy would still weigh the next entry by 0, and
        # 0 * (inf - y) is NaN when that entry is censored.
        return float(arr[int(h)])
    # Both neighbours are finite, so numpy's interpolation (the censored +inf
    # entries further up are never touched) gives the value bit for bit.
    return float(np.quantile(arr, q))


def resolvable_levels(
    num_samples: int, levels: Sequence[float] = DEFAULT_LEVELS
) -> tuple[float, ...]:
    """Return the levels q with num_samples·(1 − q) >= 1 (see the module docstring).

    Examples:
        >>> resolvable_levels(20)
        (0.5, 0.9)
        >>> resolvable_levels(100)
        (0.5, 0.9, 0.99)
    """
    # The 1e-9 keeps 100 · (1 − 0.99) = 0.99999999999999 from failing the test.
    return tuple(q for q in levels if num_samples * (1.0 - q) >= 1.0 - 1e-9)


@dataclass(frozen=True, slots=True)
class QuantileSummary:
    """Quantiles of one quantity over seeds, with the censored fraction.

    Attributes:
        num_samples: Number of runs n.
        num_censored: Runs that never reached the target (+inf).
        quantiles: (level, value) pairs for the resolvable levels; ``inf`` values
            mean "not reached".
        mean: Mean over the uncensored runs (NaN if none).
    """

    num_samples: int
    num_censored: int
    quantiles: tuple[tuple[float, float], ...]
    mean: float

    @property
    def fraction_censored(self) -> float:
        """Return the fraction of runs that never reached the target."""
        return self.num_censored / self.num_samples

    def at(self, level: float) -> float | None:
        """Return the quantile at ``level``, or ``None`` if it was not resolvable."""
        for q, v in self.quantiles:
            if math.isclose(q, level):
                return v
        return None


def summarize(
    values: Iterable[float | None],
    levels: Sequence[float] = DEFAULT_LEVELS,
    *,
    all_levels: bool = False,
) -> QuantileSummary:
    """Summarise censored observations by their quantiles.

    Args:
        values: One value per run; ``None``/NaN/+inf are censored.
        levels: Quantile levels wanted.
        all_levels: Keep every level, even those the sample cannot resolve
            (default: only :func:`resolvable_levels`).

    Returns:
        The summary.

    Raises:
        ConfigError: If ``values`` is empty or a level is outside [0, 1].

    Examples:
        >>> s = summarize([1.0, 2.0, None, 4.0])
        >>> s.quantiles, s.fraction_censored
        (((0.5, 3.0),), 0.25)
    """
    arr = as_censored(values)
    if arr.size == 0:
        raise ConfigError("cannot summarise no values")
    wanted = tuple(levels) if all_levels else resolvable_levels(arr.size, levels)
    finite = arr[np.isfinite(arr)]
    return QuantileSummary(
        num_samples=int(arr.size),
        num_censored=int(arr.size - finite.size),
        quantiles=tuple((q, censored_quantile(arr, q)) for q in wanted),
        mean=float(finite.mean()) if finite.size else math.nan,
    )


def censored_ecdf(values: Iterable[float | None]) -> tuple[FloatArray, FloatArray]:
    """Return the ECDF's steps: the sorted finite values and F̂(x) = #{y <= x}/n.

    The curve ends at the success fraction, below 1 when some runs were censored:
    the gap to 1 is the fraction that never reached the target.

    Examples:
        >>> x, f = censored_ecdf([2.0, None, 1.0, 2.0])
        >>> x.tolist(), f.tolist()
        ([1.0, 2.0, 2.0], [0.25, 0.5, 0.75])
    """
    arr = as_censored(values)
    if arr.size == 0:
        raise ConfigError("cannot take the ECDF of no values")
    finite = np.sort(arr[np.isfinite(arr)])
    frac = np.arange(1, finite.size + 1, dtype=np.float64) / arr.size
    return finite, frac


def average_gradient_norm(grad_norms: npt.ArrayLike) -> float:
    """Return (1/T) Σ_{t<T} ‖∇f(x_t)‖ over the evaluated iterates, the paper's measure.

    NaN or infinite norms (a diverged run) give +inf, i.e. a censored value.

    Raises:
        ConfigError: If no norm is given.

    Examples:
        >>> average_gradient_norm([3.0, 1.0, 2.0])
        2.0
    """
    arr = np.asarray(grad_norms, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ConfigError("average_gradient_norm needs at least one evaluation")
    if not np.all(np.isfinite(arr)):
        return math.inf
    return float(arr.mean())
