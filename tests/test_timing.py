"""Compute-time models (clipasync.timing): trace files, bad models, stated means."""

from __future__ import annotations

import math

import pytest

from clipasync.errors import ConfigError
from clipasync.timing import FixedTimes, TraceTimes, random_times, two_speed


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("worker,time\n0,1\n", "needs columns"),
        ("worker,compute_time\n0,-1\n", "positive"),
        ("worker,compute_time\n0,abc\n", "bad row"),
        ("worker,compute_time\n1,1.0\n", "no jobs for 1 workers"),
    ],
)
def test_bad_traces(tmp_path, text, match):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        TraceTimes.from_csv(path)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: FixedTimes((1.0, 0.0)), "positive"),
        (lambda: FixedTimes((1.0, -2.0)), "positive"),
        (lambda: FixedTimes((math.nan,)), "positive"),
        (lambda: random_times("exponential", -1.0, 3), "positive"),
        (lambda: random_times("pareto", 1.0, 3, alpha=0.5), "alpha"),
        (lambda: random_times("gamma", 1.0, 3), "unknown timing kind"),
        (lambda: random_times("exponential", 1.0), "num_workers"),
        (lambda: two_speed(0, 0), "at least one worker"),
    ],
)
def test_bad_timing_models(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize("kind", ["exponential", "lognormal", "pareto", "slow_prob"])
def test_random_models_have_their_stated_means(kind, rng):
    params = {
        "lognormal": {"sigma": 0.8},
        "pareto": {"alpha": 3.0},
        "slow_prob": {"p": 0.2, "slowdown": 6.0},
    }.get(kind, {})
    model = random_times(kind, [1.0, 4.0], **params)
    for w in (0, 1):
        x = model.sample_block(w, rng, 200_000)
        assert (x > 0).all()
        assert x.mean() == pytest.approx(model.mean_times()[w], rel=0.03)
