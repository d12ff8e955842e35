"""MindFlayer SGD against a hand-computed trajectory with scripted compute times.

f(x) = ½x₁² + x₂² (∇f = (x₁, 2x₂)), x₀ = (1, 1), γ = ½, B = 2. Worker 0's jobs take
5, 0.5, 1, 1, ... time units, worker 1's take 3 each; ties by start order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError, HyperparameterError
from clipasync.policies.mindflayer import MindFlayer
from clipasync.policies.params import MindFlayerParams
from clipasync.policies.registry import label, lookup
from clipasync.runtime.ray_pool import RayPool
from clipasync.sim import SimulatedPool
from clipasync.sim.availability import UnreliablePool
from clipasync.sim.dropout import BernoulliDropout
from clipasync.timing import TraceTimes
from clipasync.transforms import scale
from tests.conftest import diag_quadratic_grad

TRACE = TraceTimes(((5.0, 0.5, 1.0, 1.0, 1.0, 1.0), (3.0,) * 6))


def _run(limit: float):
    pool = SimulatedPool(TRACE, diag_quadratic_grad, seed=0)
    return run(
        MindFlayer(scale(0.5), 2, time_limits=(limit,)),
        pool,
        np.ones(2),
        stop=StopRule(max_updates=2),
        rng=np.random.default_rng(0),
    )


def test_mindflayer_hand_trajectory():
    # t = 4: limit 4: w0's first job (5 units) is abandoned at 4 and restarts at
    # x0 (0.5 units). t=3 w1@x0 (1 of 2); t=4 w0 timed out; t=4.5 w0@x0 (2 of 2):
    # x1 = (0.5, 0), w1's job cancelled, both restart at x1 (w0 due 5.5, w1 7.5);
    # t=5.5 w0@x1 (1 of 2); t=6.5 w0@x1 (2 of 2): x2 = (0.25, 0).
    res = _run(4.0)
    np.testing.assert_array_equal(res.params, [0.25, 0.0])
    a = res.recorder.arrival_arrays()
    assert a["time"].tolist() == [3.0, 4.0, 4.5, 5.5, 6.5]
    assert a["worker"].tolist() == [1, 0, 0, 0, 0]
    assert a["applied"].tolist() == [False, False, True, False, True]
    assert a["discarded"].tolist() == [False, True, False, False, False]
    np.testing.assert_array_equal(a["timed_out"], [np.nan, 1.0, np.nan, np.nan, np.nan])
    assert a["compute_time"][1] == 4.0  # the time spent on the abandoned job
    assert res.counts["discarded"] == 1 and res.counts["cancelled"] == 2
    # No limit is Rennala with cancelling: the first step waits for the 5-unit job.
    # t=3 w1 (1 of 2), t=5 w0 (2 of 2): x1, both restart (w0 0.5, w1 3 units);
    # t=5.5 w0@x1 (1 of 2), t=6.5 w0@x1 (2 of 2): x2 = (0.25, 0).
    res = _run(math.inf)
    a = res.recorder.arrival_arrays()
    assert a["time"][a["applied"]].tolist() == [5.0, 6.5]
    assert "timed_out" not in a
    np.testing.assert_array_equal(res.params, [0.25, 0.0])


def test_mindflayer_params_registry_and_bad_input():
    entry = lookup("mindflayer")
    assert entry.needs_all_workers
    p = MindFlayerParams(stepsize=0.5, batch_size=4, time_limit=2.0)
    assert label("mindflayer", entry.to_hyper(p)) == "γ=0.5, B=4, t=2"
    per = MindFlayerParams(stepsize=0.5, batch_size=4, time_limits=(1.0, 2.0))
    hyper = entry.to_hyper(per)
    assert hyper["time_limits"] == (1.0, 2.0)
    assert entry.from_hyper({**hyper, "time_limits": [1.0, 2.0]}) == per
    policy = entry.build(per)
    assert [policy.time_limit(w) for w in (0, 1)] == [1.0, 2.0]  # type: ignore[attr-defined]
    with pytest.raises(HyperparameterError, match="not both"):
        MindFlayerParams(stepsize=0.5, batch_size=4)
    with pytest.raises(HyperparameterError, match="time_limit"):
        MindFlayerParams(stepsize=0.5, batch_size=4, time_limit=-1.0)
    with pytest.raises(ConfigError, match="2 values for 3 workers"):
        policy.init(np.ones(2), 3, np.random.default_rng(0))


def test_a_pool_that_cannot_abandon_jobs_is_one_clear_error():
    inner = SimulatedPool(TRACE, diag_quadratic_grad, seed=0)
    pool = UnreliablePool(inner, BernoulliDropout(0.0), 0)
    with pytest.raises(ConfigError, match="abandons jobs past a time limit"):
        run(
            MindFlayer(scale(0.5), 2, time_limits=(4.0,)),
            pool,
            np.ones(2),
            stop=StopRule(max_updates=2),
            rng=np.random.default_rng(0),
        )
    assert not getattr(RayPool, "supports_time_limits", False)
