"""Quantiles over seeds with censored runs (clipasync.diagnostics.quantiles)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.diagnostics.quantiles import (
    as_censored,
    average_gradient_norm,
    censored_ecdf,
    censored_quantile,
    resolvable_levels,
    summarize,
)
from clipasync.errors import ConfigError

LEVELS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0]


@pytest.mark.parametrize("n", [1, 2, 7, 20, 101])
def test_uncensored_quantiles_match_numpy(rng: np.random.Generator, n: int) -> None:
    x = rng.lognormal(size=n)
    for q in LEVELS:
        assert censored_quantile(x, q) == float(np.quantile(x, q))


def test_known_values_by_hand() -> None:
    x = [10.0, 1.0, 4.0, 2.0, 3.0]  # sorted 1 2 3 4 10, h = 4q
    assert censored_quantile(x, 0.5) == 3.0
    assert censored_quantile(x, 0.9) == pytest.approx(4.0 + 0.6 * 6.0)
    assert censored_quantile(x, 0.9) == float(np.quantile(x, 0.9))


def test_censored_runs_count_as_infinite() -> None:
    # 10 runs, 2 never reached: sorted finite 1..8 then inf, inf; h = 9q.
    x = [float(v) for v in range(1, 9)] + [None, math.nan]
    assert censored_quantile(x, 0.5) == float(np.quantile(np.arange(1, 11), 0.5))
    assert censored_quantile(x, 0.7) == pytest.approx(7.3)  # h = 6.3: 7 and 8
    assert censored_quantile(x, 0.78) == math.inf  # h = 7.02 touches inf
    assert censored_quantile(x, 0.9) == math.inf
    s = summarize(x)
    assert (s.num_censored, s.fraction_censored) == (2, 0.2)
    assert s.at(0.9) == math.inf and s.at(0.99) is None
    assert s.mean == pytest.approx(4.5)


def test_all_censored() -> None:
    s = summarize([None, None, math.inf])
    assert s.fraction_censored == 1.0 and math.isnan(s.mean)
    assert s.at(0.5) == math.inf


def test_resolvable_levels() -> None:
    assert resolvable_levels(1) == ()
    assert resolvable_levels(2) == (0.5,)
    assert resolvable_levels(10) == (0.5, 0.9)
    assert resolvable_levels(99) == (0.5, 0.9)
    assert resolvable_levels(100) == (0.5, 0.9, 0.99)
    assert summarize(range(5), all_levels=True).at(0.99) == pytest.approx(3.96)


def test_ecdf_ends_at_success_fraction() -> None:
    x, f = censored_ecdf([3.0, None, 1.0, 2.0, math.inf])
    assert x.tolist() == [1.0, 2.0, 3.0]
    assert f.tolist() == [0.2, 0.4, 0.6]


def test_average_gradient_norm_and_errors() -> None:
    assert average_gradient_norm([1.0, 2.0, 6.0]) == 3.0
    assert average_gradient_norm([1.0, math.nan]) == math.inf
    with pytest.raises(ConfigError):
        average_gradient_norm([])
    with pytest.raises(ConfigError):
        censored_quantile([], 0.5)
    with pytest.raises(ConfigError):
        censored_quantile([1.0], 1.5)
    with pytest.raises(ConfigError):
        as_censored([-math.inf])


def test_quantile_on_a_sample_point_next_to_a_censored_run_is_that_point():
    # h = 0.5 * (3 - 1) = 1 lands on y_1 = 2; numpy's linear rule would weigh the
    # censored y_2 = inf by 0 and return NaN.
    assert censored_quantile([1.0, 2.0, None], 0.5) == 2.0
    assert censored_quantile([5.0, None, None, 1.0, 3.0], 0.5) == 5.0
    assert censored_quantile([1.0, 2.0, None], 0.75) == math.inf
