"""Intervals over seeds with censored runs (clipasync.diagnostics.intervals)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.diagnostics.intervals import (
    Bounded,
    median_interval,
    order_statistic_ranks,
    quantile_interval,
    ratio_bounds,
    ratio_of_medians_interval,
    sample_quantile,
)
from clipasync.errors import ConfigError

INF = math.inf


def _binomial_tolerance(p: float, reps: int) -> float:
    """Three standard errors of a coverage estimated from ``reps`` replications."""
    return 3.0 * math.sqrt(p * (1.0 - p) / reps)


def test_ranks_and_coverage_by_hand() -> None:
    # n = 10, median, 90 %: P(B <= 1) = 11/1024 <= 0.05 < P(B <= 2) = 56/1024.
    assert order_statistic_ranks(10, 0.5, 0.9) == (2, 9, pytest.approx(1 - 22 / 1024))
    # n = 20: P(B <= 5) = 21700/2^20 = 0.0207, P(B <= 6) = 0.0577.
    j, k, cov = order_statistic_ranks(20, 0.5, 0.9)
    assert (j, k) == (6, 15)
    assert cov == pytest.approx(1 - 2 * 21700 / 2**20)
    # Too few seeds: no finite end at 90 % (P(B = 0) = 1/8 > 0.05).
    assert order_statistic_ranks(3, 0.5, 0.9) == (0, 4, 1.0)
    # The 0.9-quantile of 50 samples: P(B <= 41) <= 0.05 < P(B <= 42), by sums.
    pmf = [math.comb(50, i) * 0.9**i * 0.1 ** (50 - i) for i in range(51)]
    j, k, cov = order_statistic_ranks(50, 0.9, 0.9)
    assert sum(pmf[:j]) <= 0.05 < sum(pmf[: j + 1])
    assert sum(pmf[k:]) <= 0.05 < sum(pmf[k - 1 :])
    assert cov == pytest.approx(sum(pmf[j:k]))


@pytest.mark.parametrize("censor_at", [None, 1.0])
def test_median_interval_covers_at_nominal_rate(censor_at: float | None) -> None:
    """2,000 samples of 20 exponentials (censored at 1 in the second case, 37 % of
    them): the 90 % interval covers the true median ln 2 at its exact rate 0.959."""
    rng = np.random.default_rng(20260613)
    reps, n = 2000, 20
    _, _, exact = order_statistic_ranks(n, 0.5, 0.9)
    hits = 0
    censored_total = 0
    for _ in range(reps):
        x = rng.exponential(1.0, n)
        c = np.zeros(n, dtype=bool) if censor_at is None else x > censor_at
        v = x if censor_at is None else np.minimum(x, censor_at)
        iv = median_interval(v, c, confidence=0.9)
        assert iv.coverage == pytest.approx(exact)
        censored_total += iv.censored
        hits += iv.covers(math.log(2.0))
    coverage = hits / reps
    tol = _binomial_tolerance(exact, reps)
    assert coverage >= 0.9 - _binomial_tolerance(0.9, reps)
    assert abs(coverage - exact) <= tol
    if censor_at is not None:
        assert censored_total / (reps * n) == pytest.approx(math.exp(-1.0), abs=0.01)


def test_quantile_interval_covers_the_90_percent_quantile() -> None:
    rng = np.random.default_rng(7)
    reps, n, q = 2000, 50, 0.9
    _, _, exact = order_statistic_ranks(n, q, 0.9)
    truth = -math.log(1 - q)  # exponential(1) quantile
    hits = sum(
        quantile_interval(rng.exponential(1.0, n), q=q, confidence=0.9).covers(truth)
        for _ in range(reps)
    )
    assert abs(hits / reps - exact) <= _binomial_tolerance(exact, reps)
    assert hits / reps >= 0.9 - _binomial_tolerance(0.9, reps)


def test_uncensored_estimates_match_numpy() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 20):
        x = rng.lognormal(size=n)
        for q in (0.1, 0.5, 0.9):
            b = sample_quantile(x, q=q)
            assert b.exact and b.lo == pytest.approx(float(np.quantile(x, q)))
        iv = median_interval(x)
        j, k, _ = order_statistic_ranks(n, 0.5, 0.9)
        xs = np.sort(x)
        assert iv.lower.value == (xs[j - 1] if j >= 1 else -INF)
        assert iv.upper.value == (xs[k - 1] if k <= n else INF)


def _inf_convention_quantile(x: np.ndarray, c: np.ndarray, q: float) -> float:
    """The q-quantile with censored runs as +inf, interpolated by hand."""
    arr = np.sort(np.where(c, INF, x))
    h = q * (arr.size - 1)
    f, k = math.floor(h), math.ceil(h)
    if not math.isfinite(arr[k]):
        return INF
    return float(arr[f] + (arr[k] - arr[f]) * (h - f))


def test_common_cap_agrees_with_the_inf_convention() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        x = rng.exponential(1.0, 9)
        c = x > 1.2
        for q in (0.25, 0.5, 0.75):
            b = sample_quantile(np.minimum(x, 1.2), c, q)
            ref = _inf_convention_quantile(x, c, q)
            assert b.hi == pytest.approx(ref)
            if math.isfinite(ref):
                assert b.exact
            else:  # "≥ x": with one cap, the quantile of the capped sample
                capped = float(np.quantile(np.minimum(x, 1.2), q))
                assert b.lo == pytest.approx(capped)


def test_censored_cases_by_hand() -> None:
    # Reached 1 and 2, three runs stopped at the cap 60: median "≥ 60".
    iv = median_interval([1.0, 2.0, 60.0, 60.0, 60.0], [False, False, True, True, True])
    assert iv.estimate == Bounded(60.0, INF)
    # n = 5: ranks 1 and 5, coverage 1 − 2/32.
    assert iv.lower == Bounded(1.0, 1.0)
    assert iv.upper == Bounded(60.0, INF)
    assert iv.coverage == pytest.approx(30 / 32)
    assert (iv.n, iv.censored) == (5, 3)
    # Censored runs rank after every reached one: the bound is the largest reached.
    assert sample_quantile([3000.0, 50.0, 40.0], [False, True, True]) == Bounded(
        3000.0, INF
    )
    # Sorted 10, 20, c5, c50 → rank lower bounds 10, 20, 20, 50; median at 1.5.
    assert sample_quantile([10.0, 5.0, 20.0, 50.0], [False, True, False, True]) == (
        Bounded(20.0, INF)
    )
    # Even n, upper neighbour censored at 9: (2 + T)/2 with T >= 9.
    assert sample_quantile([1.0, 2.0, 9.0, 9.0], [False, False, True, True]) == (
        Bounded(5.5, INF)
    )
    # The censored runs beyond the median do not touch it.
    assert sample_quantile([1.0, 2.0, 3.0, 9.0], [False, False, False, True]) == (
        Bounded(2.5, 2.5)
    )
    # A censored run without a lower bound (NaN) still ranks last.
    assert sample_quantile([1.0, math.nan, 2.0], [False, True, False], 1.0) == (
        Bounded(2.0, INF)
    )


def test_ratio_bounds_by_hand() -> None:
    assert ratio_bounds(Bounded(6.0, 6.0), Bounded(2.0, 2.0)) == Bounded(3.0, 3.0)
    assert ratio_bounds(Bounded(60.0, INF), Bounded(20.0, 20.0)) == Bounded(3.0, INF)
    assert ratio_bounds(Bounded(20.0, 20.0), Bounded(60.0, INF)) == Bounded(
        0.0, 20.0 / 60.0
    )
    assert ratio_bounds(Bounded(60.0, INF), Bounded(60.0, INF)) == Bounded(0.0, INF)


def test_bootstrap_matches_an_independent_resampling() -> None:
    x = np.array([5.0, 7.0, 3.0, 9.0, 4.0, 6.0, 8.0])
    y = np.array([2.0, 3.0, 2.5, 4.0, 3.5, 1.5])
    b = 500
    iv = ratio_of_medians_interval(
        x, None, y, None, np.random.default_rng(11), confidence=0.8, resamples=b
    )
    rng = np.random.default_rng(11)
    ix = rng.integers(0, x.size, size=(b, x.size))
    iy = rng.integers(0, y.size, size=(b, y.size))
    r = np.median(x[ix], axis=1) / np.median(y[iy], axis=1)
    assert iv.estimate.exact
    assert iv.estimate.lo == pytest.approx(np.median(x) / np.median(y))
    assert iv.lower.exact and iv.upper.exact
    assert iv.lower.lo == pytest.approx(np.sort(r)[int(np.floor(0.1 * (b - 1)))])
    assert iv.upper.lo == pytest.approx(np.sort(r)[int(np.ceil(0.9 * (b - 1)))])
    assert iv.coverage is None
    # Reproducible under a seeded generator.
    again = ratio_of_medians_interval(
        x, None, y, None, np.random.default_rng(11), confidence=0.8, resamples=b
    )
    assert again == iv


def test_bootstrap_with_a_censored_baseline_gives_lower_bounds() -> None:
    # The baseline never reached the target within 60: every ratio is "≥".
    base = np.full(8, 60.0)
    ref = np.array([10.0, 12.0, 11.0, 9.0, 13.0, 10.5, 11.5, 12.5])
    iv = ratio_of_medians_interval(
        base, np.ones(8, bool), ref, None, np.random.default_rng(0)
    )
    assert iv.estimate == Bounded(60.0 / float(np.median(ref)), INF)
    assert iv.lower.hi == INF and iv.upper.hi == INF
    assert 60.0 / 13.0 <= iv.lower.lo <= iv.upper.lo <= 60.0 / 9.0
    # The other way round the speedup is "≤".
    iv = ratio_of_medians_interval(
        ref, None, base, np.ones(8, bool), np.random.default_rng(0)
    )
    assert iv.estimate == Bounded(0.0, float(np.median(ref)) / 60.0)
    assert iv.lower.lo == 0.0 and iv.upper.lo == 0.0 and iv.upper.hi <= 13.0 / 60.0


def test_bootstrap_covers_a_known_ratio() -> None:
    """400 pairs of exponential samples (medians 2 ln 2 and ln 2, ratio 2)."""
    rng = np.random.default_rng(2026)
    reps = 400
    hits = 0
    for _ in range(reps):
        x, y = rng.exponential(2.0, 20), rng.exponential(1.0, 20)
        hits += ratio_of_medians_interval(x, None, y, None, rng, resamples=1000).covers(
            2.0
        )
    # Percentile intervals of medians are close to nominal at n = 20.
    assert abs(hits / reps - 0.9) <= _binomial_tolerance(0.9, reps) + 0.02


def test_errors() -> None:
    with pytest.raises(ConfigError):
        median_interval([])
    with pytest.raises(ConfigError):
        median_interval([1.0, 2.0], [True])
    with pytest.raises(ConfigError):
        quantile_interval([1.0], q=1.0)
    with pytest.raises(ConfigError):
        median_interval([1.0], confidence=1.0)
    with pytest.raises(ConfigError):
        median_interval([math.nan])
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError):
        ratio_of_medians_interval([-1.0], None, [1.0], None, rng)
    with pytest.raises(ConfigError):
        ratio_of_medians_interval([1.0], None, [1.0], None, rng, resamples=0)
