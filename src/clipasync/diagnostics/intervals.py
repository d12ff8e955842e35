"""Confidence intervals over seeds when some runs never reached the target.

The tuning protocol of the benchmark reports every time, update count and speedup
with an interval over evaluation seeds (Erickson & Johansson 2026, arXiv
2606.13287, measure clipped asynchronous SGD against its baselines in time to a
target, Sec. 6; here each claim gets the uncertainty over seeds that the paper's
figures leave out). Everything here is pure.

Censoring. A run that stopped before it reached the target (time cap, update cap,
divergence) has no score; it is given as ``censored=True`` with its *value* a lower
bound (the time, or the number of updates, at which it stopped). As in
:mod:`clipasync.diagnostics.quantiles`, a censored run counts as larger than every
run that did reach the target (+∞ in the ordering). A quantity is then known only
as a range :class:`Bounded` ``[lo, hi]``: the k-th order statistic of a sample
sorted with the censored runs last is exact when it is a reached run, and when it
is a censored one it is at least the largest reached value and at least the
(k − f)-th smallest censored lower bound (f reached runs), hi = +∞. With one time
cap for all runs that is "≥ cap".

Order-statistic interval of a quantile (distribution free). With n samples of a
continuous distribution and B = #{X_i <= ξ_q} ~ Binomial(n, q),
P(X_(j) <= ξ_q < X_(k)) = P(j <= B <= k − 1) (1-based ranks). The interval
[X_(j), X_(k)] takes the largest j with P(B <= j − 1) <= α/2 and the smallest k with
P(B >= k) <= α/2, so its coverage is at least 1 − α (e.g. n = 20, median, 90 %:
ranks 6 and 15, coverage 0.959). Too few samples leave an end open (−∞ or +∞).
Censoring at a common cap does not change the ranks, so the coverage holds; an end
that lands on a censored run is reported as a lower bound.

Ratio of two medians (percentile bootstrap). The two samples are resampled
independently with replacement; in each resample the medians are bounded as above
and the ratio is bounded by [lo₁/hi₂, hi₁/lo₂]. The interval's ends are the
α/2- and (1 − α/2)-order statistics of those replicate bounds (the lower end of
the lower bounds, …): a range whenever censoring leaves them apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Default number of bootstrap resamples.
DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Bounded:
    """A quantity known to lie in ``[lo, hi]`` (``lo == hi``: known exactly).

    ``hi = +inf`` with a finite ``lo`` reads "≥ lo" (a censored median, or a speedup
    whose baseline is censored); ``lo = 0`` with a finite ``hi`` reads "≤ hi" for
    a positive ratio whose denominator is censored.
    """

    lo: float
    hi: float

    @property
    def exact(self) -> bool:
        """True when the value is known (not touched by censoring)."""
        return self.lo == self.hi

    @property
    def value(self) -> float:
        """The exact value, else the lower bound (the ``x`` of "≥ x")."""
        return self.lo

    def contains(self, x: float) -> bool:
        """True when ``x`` lies in ``[lo, hi]``."""
        return self.lo <= x <= self.hi


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    Attributes:
        estimate: The sample quantile (or ratio of medians).
        lower: The lower end of the interval.
        upper: The upper end of the interval.
        confidence: The nominal level.
        coverage: The exact coverage of an order-statistic interval (``None`` for a
            bootstrap interval).
        n: Sample size (of the numerator for a ratio).
        censored: Censored samples (of the numerator for a ratio).
    """

    estimate: Bounded
    lower: Bounded
    upper: Bounded
    confidence: float
    coverage: float | None
    n: int
    censored: int

    def covers(self, x: float) -> bool:
        """True when ``x`` lies between the lowest lower end and the highest upper."""
        return self.lower.lo <= x <= self.upper.hi


def _check_level(name: str, value: float, closed: bool) -> float:
    v = float(value)
    ok = 0.0 <= v <= 1.0 if closed else 0.0 < v < 1.0
    if not ok:
        raise ConfigError(f"{name} must lie in {'[0, 1]' if closed else '(0, 1)'}")
    return v


def _sample(
    values: Sequence[float] | FloatArray, censored: Sequence[bool] | BoolArray | None
) -> tuple[FloatArray, BoolArray]:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    c = (
        np.zeros(v.shape, dtype=bool)
        if censored is None
        else np.asarray(censored, dtype=bool).reshape(-1)
    )
    if v.shape != c.shape:
        raise ConfigError("values and censored flags must have the same length")
    if v.size == 0:
        raise ConfigError("cannot take an interval of no values")
    if np.any(np.isnan(v) & ~c):
        raise ConfigError("an uncensored value must not be NaN")
    # A censored run without a usable lower bound (NaN) bounds nothing.
    v = np.where(c & np.isnan(v), -math.inf, v)
    return v, c


def _sorted_bounds(v: FloatArray, c: BoolArray) -> tuple[FloatArray, FloatArray]:
    """Per-rank bounds of a sample (last axis) sorted with censored runs last.

    Returns ``(lower, upper)``: reached ranks are exact; a censored rank's lower
    bound is the running maximum (largest reached value, then the censored lower
    bounds in increasing order) and its upper bound +∞.
    """
    order = np.lexsort((v, c), axis=-1)
    vs = np.take_along_axis(v, order, axis=-1)
    cs = np.take_along_axis(c, order, axis=-1)
    lower = np.maximum.accumulate(vs, axis=-1)
    upper = np.where(cs, math.inf, vs)
    return lower, upper


def _interp(a: FloatArray, b: FloatArray, frac: float) -> FloatArray:
    if frac == 0.0:
        return a
    with np.errstate(invalid="ignore"):
        out = a + (b - a) * frac
    return np.where(np.isinf(b) | np.isinf(a), np.maximum(a, b), out)


def _quantile_bounds(
    lower: FloatArray, upper: FloatArray, q: float
) -> tuple[FloatArray, FloatArray]:
    """Linear-interpolation q-quantile (numpy's default) of per-rank bounds."""
    n = lower.shape[-1]
    h = q * (n - 1)
    f, k = math.floor(h), math.ceil(h)
    frac = h - f
    lo = _interp(lower[..., f], lower[..., k], frac)
    hi = _interp(upper[..., f], upper[..., k], frac)
    return lo, hi


def sample_quantile(
    values: Sequence[float] | FloatArray,
    censored: Sequence[bool] | BoolArray | None = None,
    q: float = 0.5,
) -> Bounded:
    """Return the empirical q-quantile (numpy's ``linear`` rule) as bounds.

    Examples:
        >>> sample_quantile([3.0, 1.0, 2.0])
        Bounded(lo=2.0, hi=2.0)
        >>> sample_quantile([1.0, 60.0, 60.0], [False, True, True])  # "≥ 60"
        Bounded(lo=60.0, hi=inf)
    """
    q = _check_level("q", q, closed=True)
    v, c = _sample(values, censored)
    lower, upper = _sorted_bounds(v, c)
    lo, hi = _quantile_bounds(lower, upper, q)
    return Bounded(float(lo), float(hi))


def _log_binom_pmf(n: int, i: int, p: float) -> float:
    if p in (0.0, 1.0):
        return 0.0 if i == (0 if p == 0.0 else n) else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * math.log(p)
        + (n - i) * math.log1p(-p)
    )


def order_statistic_ranks(
    n: int, q: float, confidence: float
) -> tuple[int, int, float]:
    """Return the 1-based ranks (j, k) of the order-statistic interval and its coverage.

    ``j = 0`` means no finite lower end (−∞), ``k = n + 1`` no finite upper end.
    The coverage is P(j <= B <= k − 1) for B ~ Binomial(n, q).

    Examples:
        >>> j, k, cov = order_statistic_ranks(20, 0.5, 0.9)
        >>> (j, k, round(cov, 4))
        (6, 15, 0.9586)
    """
    if n < 1:
        raise ConfigError("an interval needs at least one sample")
    q = _check_level("q", q, closed=False)
    confidence = _check_level("confidence", confidence, closed=False)
    alpha = 1.0 - confidence
    pmf = [math.exp(_log_binom_pmf(n, i, q)) for i in range(n + 1)]
    # j: largest with P(B <= j - 1) <= α/2 (P(B <= -1) = 0, so j >= 0 exists).
    j, below = 0, 0.0
    while j < n and below + pmf[j] <= alpha / 2:
        below += pmf[j]
        j += 1
    # k: smallest with P(B >= k) <= α/2.
    k, above = n + 1, 0.0
    while k > 1 and above + pmf[k - 1] <= alpha / 2:
        above += pmf[k - 1]
        k -= 1
    if j >= k:  # pragma: no cover - cannot happen for alpha < 1
        raise ConfigError("no order-statistic interval at this level")
    coverage = sum(pmf[j:k]) if j > 0 else sum(pmf[:k])
    return j, k, float(min(1.0, coverage))


def quantile_interval(
    values: Sequence[float] | FloatArray,
    censored: Sequence[bool] | BoolArray | None = None,
    q: float = 0.5,
    confidence: float = 0.9,
) -> Interval:
    """Return the sample q-quantile with its distribution-free order-statistic interval.

    Args:
        values: One score per seed; a censored seed's value is its lower bound.
        censored: True where the seed never reached the target (default: none).
        q: Level of the quantile, in (0, 1).
        confidence: Nominal level of the interval, in (0, 1).

    Raises:
        ConfigError: On an empty sample, mismatched lengths or a level outside (0, 1).

    Examples:
        >>> iv = quantile_interval(list(range(1, 21)))
        >>> iv.estimate.value, iv.lower.value, iv.upper.value
        (10.5, 6.0, 15.0)
    """
    v, c = _sample(values, censored)
    j, k, coverage = order_statistic_ranks(v.size, q, confidence)
    lower, upper = _sorted_bounds(v, c)
    lo_end = (
        Bounded(float(lower[j - 1]), float(upper[j - 1]))
        if j >= 1
        else Bounded(-math.inf, -math.inf)
    )
    hi_end = (
        Bounded(float(lower[k - 1]), float(upper[k - 1]))
        if k <= v.size
        else Bounded(math.inf, math.inf)
    )
    est_lo, est_hi = _quantile_bounds(lower, upper, q)
    return Interval(
        estimate=Bounded(float(est_lo), float(est_hi)),
        lower=lo_end,
        upper=hi_end,
        confidence=confidence,
        coverage=coverage,
        n=int(v.size),
        censored=int(c.sum()),
    )


def median_interval(
    values: Sequence[float] | FloatArray,
    censored: Sequence[bool] | BoolArray | None = None,
    confidence: float = 0.9,
) -> Interval:
    """Return the sample median with its order-statistic interval (see
    :func:`quantile_interval`)."""
    return quantile_interval(values, censored, 0.5, confidence)


def _divide(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den for non-negative bounds: x/∞ = 0, x/0 = ∞ (x > 0), 0/0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.true_divide(num, den)
    out = np.where(np.isinf(den) & np.isfinite(num), 0.0, out)
    out = np.where((den == 0.0) & (num > 0.0), math.inf, out)
    out = np.where((den == 0.0) & (num == 0.0), 0.0, out)
    return np.where(np.isinf(num) & np.isinf(den), np.nan, out)


def ratio_bounds(num: Bounded, den: Bounded) -> Bounded:
    """Bounds of num / den for two non-negative bounded quantities.

    Examples:
        >>> ratio_bounds(Bounded(6.0, 6.0), Bounded(2.0, 2.0))
        Bounded(lo=3.0, hi=3.0)
        >>> ratio_bounds(Bounded(60.0, float("inf")), Bounded(20.0, 20.0))  # "≥ 3"
        Bounded(lo=3.0, hi=inf)
    """
    lo = _divide(np.array([num.lo]), np.array([den.hi]))[0]
    hi = _divide(np.array([num.hi]), np.array([den.lo]))[0]
    # ∞/∞ bounds nothing: the ratio lies anywhere in [lo, ∞).
    return Bounded(
        float(0.0 if math.isnan(lo) else lo), float(math.inf if math.isnan(hi) else hi)
    )


def _resampled_median_bounds(
    v: FloatArray, c: BoolArray, rng: np.random.Generator, resamples: int
) -> tuple[FloatArray, FloatArray]:
    idx = rng.integers(0, v.size, size=(resamples, v.size))
    lower, upper = _sorted_bounds(v[idx], c[idx])
    return _quantile_bounds(lower, upper, 0.5)


def ratio_of_medians_interval(
    num_values: Sequence[float] | FloatArray,
    num_censored: Sequence[bool] | BoolArray | None,
    den_values: Sequence[float] | FloatArray,
    den_censored: Sequence[bool] | BoolArray | None,
    rng: np.random.Generator,
    confidence: float = 0.9,
    resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """Return median(num) / median(den) with a percentile bootstrap interval.

    The samples are independent; each of ``resamples`` replicates resamples both
    with replacement (numerator first, from ``rng``). The speedup of a reference
    method over a baseline is ``num`` = baseline, ``den`` = reference.

    Args:
        num_values: Numerator sample (a censored value is its lower bound).
        num_censored: Its censored flags (``None``: none).
        den_values: Denominator sample.
        den_censored: Its censored flags.
        rng: Source of the resamples (seed it for a reproducible report).
        confidence: Nominal level, in (0, 1).
        resamples: Number of bootstrap replicates (>= 1).

    Raises:
        ConfigError: On an empty sample, a negative value or a bad level.
    """
    confidence = _check_level("confidence", confidence, closed=False)
    if int(resamples) < 1:
        raise ConfigError("resamples must be at least 1")
    nv, nc = _sample(num_values, num_censored)
    dv, dc = _sample(den_values, den_censored)
    if np.any(nv[~nc] < 0) or np.any(dv[~dc] < 0):
        raise ConfigError("a ratio of medians needs non-negative values")
    nv, dv = np.maximum(nv, 0.0), np.maximum(dv, 0.0)
    estimate = ratio_bounds(sample_quantile(nv, nc), sample_quantile(dv, dc))
    n_lo, n_hi = _resampled_median_bounds(nv, nc, rng, int(resamples))
    d_lo, d_hi = _resampled_median_bounds(dv, dc, rng, int(resamples))
    r_lo = _divide(n_lo, d_hi)
    r_hi = _divide(n_hi, d_lo)
    r_lo = np.where(np.isnan(r_lo), 0.0, r_lo)
    r_hi = np.where(np.isnan(r_hi), math.inf, r_hi)
    alpha = 1.0 - confidence
    lower = Bounded(
        float(np.quantile(r_lo, alpha / 2, method="lower")),
        float(np.quantile(r_hi, alpha / 2, method="lower")),
    )
    upper = Bounded(
        float(np.quantile(r_lo, 1 - alpha / 2, method="higher")),
        float(np.quantile(r_hi, 1 - alpha / 2, method="higher")),
    )
    return Interval(
        estimate=estimate,
        lower=lower,
        upper=upper,
        confidence=confidence,
        coverage=None,
        n=int(nv.size),
        censored=int(nc.sum()),
    )
