"""A run's scores to the target and their censoring (experiments.analysis.run_score)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.experiments.analysis import (
    EVAL,
    LEGACY,
    TUNE,
    coarse_grid_sizes,
    concurrency,
    largest_delay,
    robust_reached,
    run_score,
    score_sample,
    split_stages,
)
from tests.reports.rundirs import CAP, run_summary


def _run(**kw: object) -> dict[str, object]:
    base = {"method": "m", "hyper": {"stepsize": 0.1}, "seed": 0, "d": 4.0}
    return run_summary(**{**base, **kw})  # type: ignore[arg-type]


def test_protocol_scores_read_the_new_fields() -> None:
    r = _run(hit=12.0, stage=EVAL, robust_lag=3.0)
    assert run_score(r, "time") == (12.0, False)
    assert run_score(r, "robust") == (15.0, False)
    assert run_score(r, "updates") == (120.0, False)
    assert run_score(r, "gradients") == (125.0, False)
    assert robust_reached(r)
    # First hit but never confirmed: the robust hit is censored at the stop.
    r = _run(hit=12.0, stage=EVAL, robust_lag=None)
    assert run_score(r, "robust") == (CAP, True) and not robust_reached(r)


def test_censored_runs_give_lower_bounds() -> None:
    r = _run(hit=None, stage=EVAL)  # stopped at the cap
    assert run_score(r, "time") == (CAP, True)
    assert run_score(r, "updates") == (10 * CAP, True)
    assert run_score(r, "gradients") == (10 * CAP + 5, True)
    # A diverged run stopped at 50 never gets there: its time bound is the cap.
    r = _run(hit=None, stage=EVAL, diverged=True)
    assert r["censor_time"] == CAP / 2
    assert run_score(r, "time") == (CAP, True)
    assert run_score(r, "updates") == (10 * CAP / 2, True)  # no update budget


def test_legacy_runs_fall_back_on_their_totals() -> None:
    r = _run(hit=7.0, stage=None)
    assert "updates_to_target" not in r and r["stop_reason"] == "target"
    assert run_score(r, "time") == run_score(r, "robust") == (7.0, False)
    assert run_score(r, "updates") == (70.0, False)
    # Reached, but ran on past the hit without recording the count: unknown.
    r["stop_reason"] = "max_time"
    assert math.isnan(run_score(r, "updates")[0])
    values, censored = score_sample([r, _run(hit=None, stage=None)], "updates")
    assert values.tolist() == [10 * CAP] and censored.tolist() == [True]
    with pytest.raises(ConfigError):
        run_score(r, "loss")


def test_stages_delays_workers_and_budgets() -> None:
    runs = [
        _run(hit=1.0, stage=TUNE, largest_delay=15),
        _run(hit=1.0, stage=TUNE, hyper={"stepsize": 0.2}, largest_delay=300),
        _run(hit=1.0, stage=EVAL),
        _run(hit=1.0, stage=None),
    ]
    stages = split_stages(runs)
    assert [len(stages[s]) for s in (TUNE, EVAL, LEGACY)] == [2, 1, 1]
    assert largest_delay(runs[:2]) == 300
    assert largest_delay([]) is None
    assert concurrency(runs[0]) == 16  # 15 fast + 1 slow
    assert concurrency({"timing": {"kind": "trace", "path": "x.csv"}}) is None
    sizes = coarse_grid_sizes(stages[TUNE], ["timing.slow_time"])
    assert sizes == {((4.0,), "m"): 2}
    assert np.isfinite(run_score(runs[0], "time")[0])
