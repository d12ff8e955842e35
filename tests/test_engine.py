"""The driver loop (clipasync.engine): targets, divergence, stop rules."""

from __future__ import annotations

import numpy as np
import pytest

from clipasync.engine import StopRule, Target, run
from clipasync.errors import ConfigError
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import scale
from tests.conftest import noisy_quadratic_grad


def test_target_stops_the_run_at_the_first_evaluation_that_reaches_it():
    pool = SimulatedPool(FixedTimes((1.0,) * 4), noisy_quadratic_grad, seed=0)

    def evaluate(x):
        return {"loss": 0.5 * float(x @ x)}

    res = run(
        AsyncSGD(scale(0.05)),
        pool,
        np.full(3, 5.0),
        stop=StopRule(max_time=500, target=Target("loss", 1.0)),
        rng=np.random.default_rng(0),
        evaluate=evaluate,
        eval_every=2.0,
    )
    assert res.stop_reason == "target"
    evals = res.recorder.evals
    assert res.time_to_target == evals[-1]["time"]
    assert evals[-1]["loss"] <= 1.0 < evals[-2]["loss"]
    assert all(e["time"] == 2.0 * i for i, e in enumerate(evals))


def test_divergence_is_detected():
    pool = SimulatedPool(FixedTimes((1.0,) * 4), noisy_quadratic_grad, seed=0)
    res = run(
        AsyncSGD(scale(3.0)),
        pool,
        np.full(3, 5.0),
        stop=StopRule(max_time=1e4),
        rng=np.random.default_rng(0),
        evaluate=lambda x: {"loss": float(x @ x)},
        eval_every=1.0,
    )
    assert res.stop_reason == "diverged"


def test_a_run_that_ends_diverged_says_so_without_eval_every():
    # Stepsize 3 on f = ||x||^2/2 multiplies the error by about -2 per update: 40
    # arrivals from 5 end at a loss of ~4e16, far above 1e6 x the initial 75; with
    # no cadence only the final evaluation sees it (before: stop_reason max_arrivals).
    pool = SimulatedPool(FixedTimes((1.0,) * 4), noisy_quadratic_grad, seed=0)
    res = run(
        AsyncSGD(scale(3.0)),
        pool,
        np.full(3, 5.0),
        stop=StopRule(max_arrivals=40),
        rng=np.random.default_rng(0),
        evaluate=lambda x: {"loss": float(x @ x)},
    )
    assert res.stop_reason == "diverged"
    assert [e["time"] for e in res.recorder.evals] == [0.0, res.time]

    assert res.time < 1e4


def test_stop_rule_needs_a_budget():
    with pytest.raises(ConfigError, match="at least one"):
        StopRule()
    with pytest.raises(ConfigError, match="max_time must be positive"):
        StopRule(max_time=-1)


def _gap_run(target: Target):
    pool = SimulatedPool(FixedTimes((1.0,) * 4), noisy_quadratic_grad, seed=0)
    return run(
        AsyncSGD(scale(0.05)),
        pool,
        np.full(3, 5.0),
        stop=StopRule(max_time=500, target=target),
        rng=np.random.default_rng(0),
        evaluate=lambda x: {"loss": 0.5 * float(x @ x), "gap": 0.5 * float(x @ x)},
        eval_every=2.0,
    )


def test_a_target_states_its_direction_unless_the_metric_is_known():
    # A custom "gap" (here equal to the loss) used to be maximised by name and
    # "reached" at t = 0; now it needs a direction, and minimised it is reached
    # exactly when the same target on the loss is.
    with pytest.raises(ConfigError, match="'gap' has no known direction"):
        Target("gap", 1.0)
    with pytest.raises(ConfigError, match="must be 'minimise' or 'maximise'"):
        Target("gap", 1.0, direction="down")  # type: ignore[arg-type]
    gap = _gap_run(Target("gap", 1.0, direction="minimise"))
    loss = _gap_run(Target("loss", 1.0))
    assert gap.time_to_target == loss.time_to_target > 0
    assert _gap_run(Target("gap", 1.0, direction="maximise")).time_to_target == 0.0
    # Known metrics keep their direction; stating the known one changes nothing.
    assert Target("loss", 1.0).minimise and not Target("test_accuracy", 0.9).minimise
    stated = _gap_run(Target("loss", 1.0, direction="minimise"))
    assert stated.time_to_target == loss.time_to_target
    assert stated.recorder.evals == loss.recorder.evals
