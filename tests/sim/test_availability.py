"""Unreliable workers and open systems (clipasync.sim.dropout, availability): lost
jobs, dropout models, Little's law, payloads in an open system.

Clients are heterogeneous quadratics f_i(x) = ½‖x − c_i‖² (client i's optimum is
c_i), with optional Gaussian oracle noise, so every expected value is easy to write.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError, WorkerFailed
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.fedbuff import FedBuff
from clipasync.problems.local_training import local_sgd_task
from clipasync.sim import (
    BernoulliDropout,
    OpenSystemPool,
    PeriodicOffline,
    ScriptedDropout,
    SimulatedPool,
    UnreliablePool,
    make_dropout,
)
from clipasync.timing import ExponentialTimes, FixedTimes, TraceTimes
from clipasync.transforms import scale
from clipasync.types import Arrival
from tests.conftest import (
    HeteroQuadratic,
    centers,
)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: BernoulliDropout(1.0), "probability"),
        (lambda: PeriodicOffline(10.0, 10.0, (0.0,)), "off_time"),
        (lambda: make_dropout({"kind": "markov"}), "unknown dropout kind"),
        (lambda: OpenSystemPool(FixedTimes((1.0,)), 0.0, None, 0), "rate"),
    ],
)
def test_bad_availability_parameters_raise(build: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


def test_periodic_offline_intervals() -> None:
    m = PeriodicOffline(period=10.0, off_time=2.0, phases=(0.0, 5.0))
    rng = np.random.default_rng(0)
    lost = [
        m.lost(0, 0, s, e, rng)
        for s, e in [(0, 1), (3, 9), (3, 11), (9, 10), (2, 5), (12, 13), (11, 12.5)]
    ]
    assert lost == [True, False, True, False, False, False, True]
    assert m.lost(1, 0, 3.0, 4.0, rng) is False and m.lost(1, 0, 3.0, 5.5, rng) is True


def test_dropout_models_live_in_sim_dropout_and_the_sim_package_exports_them() -> None:
    import clipasync.sim
    from clipasync.sim import dropout

    for name in ("BernoulliDropout", "PeriodicOffline", "ScriptedDropout"):
        cls = getattr(dropout, name)
        assert cls.__module__ == "clipasync.sim.dropout"
        assert getattr(clipasync.sim, name) is cls
    assert make_dropout({"kind": "bernoulli", "p": 0.25}) == BernoulliDropout(0.25)
    spec = {"kind": "periodic", "period": 10, "off_time": 2, "phases": [0, 5]}
    assert make_dropout(spec) == PeriodicOffline(10, 2, (0.0, 5.0))
    with pytest.raises(ConfigError, match="phases list 2 workers, the pool has 3"):
        dropout.check_phases(make_dropout(spec), 3)
    with pytest.raises(ConfigError, match="unknown dropout kind"):
        make_dropout({"kind": "always"})


def fedbuff_run(pool: Any, max_updates: int = 12) -> Any:
    return run(
        FedBuff(2, scale(0.5)),
        pool,
        np.zeros(3),
        stop=StopRule(max_updates=max_updates),
        rng=np.random.default_rng(0),
    )


def test_lost_job_is_counted_and_nothing_else_changes() -> None:
    prob = HeteroQuadratic(centers(3))  # exact oracle: a payload depends on x only
    task = local_sgd_task(prob, 2, 0.3)
    w0, w2 = (1.0,) * 40, (3.0,) * 40
    # Worker 1's first attempt (2.0) is lost when due at t=2; the retry takes 2.5.
    lossy = UnreliablePool(
        SimulatedPool(TraceTimes((w0, (2.0, 2.5) + (2.0,) * 40, w2)), task, seed=0),
        ScriptedDropout(frozenset({(1, 0)})),
        seed=0,
    )
    # The same run where that job is replaced by one job of 2.0 + 2.5 time units.
    scripted = SimulatedPool(TraceTimes((w0, (4.5,) + (2.0,) * 40, w2)), task, seed=0)
    a, b = fedbuff_run(lossy), fedbuff_run(scripted)
    assert lossy.lost_jobs == 1 and lossy.lost_by_worker == [0, 1, 0]
    assert lossy.lost_compute_time == 2.0
    assert a.stop_reason == "max_updates" and a.counts == b.counts
    np.testing.assert_array_equal(a.params, b.params)
    ra, rb = a.recorder.arrival_arrays(), b.recorder.arrival_arrays()
    for col in ra:
        np.testing.assert_array_equal(ra[col], rb[col], err_msg=col)
    assert 4.5 in ra["compute_time"].tolist()


def test_random_dropouts_run_goes_on_and_keeps_concurrency() -> None:
    prob = HeteroQuadratic(centers(6), noise=1.0)
    task = local_sgd_task(prob, 2, 0.1)
    timing = ExponentialTimes((1.0, 1.0, 1.0, 5.0, 5.0, 5.0))

    def make() -> UnreliablePool:
        return UnreliablePool(
            SimulatedPool(timing, task, seed=9), BernoulliDropout(0.3), seed=9
        )

    p1, p2 = make(), make()
    r1, r2 = fedbuff_run(p1, 100), fedbuff_run(p2, 100)
    assert r1.stop_reason == "max_updates"
    assert p1.lost_jobs > 20 and sum(p1.lost_by_worker) == p1.lost_jobs
    assert p1.in_flight() == 6  # every worker still has its job
    np.testing.assert_array_equal(r1.params, r2.params)  # deterministic given seed
    assert p1.lost_jobs == p2.lost_jobs
    # Lost attempts never reach the policy: arrivals = inner arrivals − losses.
    assert r1.counts["arrivals"] == 200


def test_always_lost_job_raises_worker_failed() -> None:
    pool = UnreliablePool(
        SimulatedPool(FixedTimes((1.5,)), None, seed=0),
        PeriodicOffline(period=2.0, off_time=1.0, phases=(0.0,)),
        seed=0,
        max_losses_per_job=5,
    )
    with pytest.raises(WorkerFailed, match="lost 5 times"):
        fedbuff_run(pool)


@pytest.mark.parametrize(
    "timing",
    [
        FixedTimes((1.0, 2.0, 3.0, 4.0)),
        ExponentialTimes((0.5, 1.0, 2.0, 4.5)),
    ],
)
def test_open_system_concurrency_follows_littles_law(timing: Any) -> None:
    rate, horizon = 4.0, 3000.0
    pool = OpenSystemPool(timing, rate, None, seed=0)
    res = run(
        AsyncSGD(scale(0.1), assign="random"),
        pool,
        np.zeros(2),
        stop=StopRule(max_time=horizon),
        rng=np.random.default_rng(0),
    )
    expected = rate * float(np.mean(timing.mean_times()))  # λ E[τ]: 10 and 8
    assert pool.mean_concurrency() == pytest.approx(expected, rel=0.05)
    assert pool.started_jobs == pytest.approx(rate * horizon, rel=0.05)
    # The run stopped on the first arrival past the horizon, which is not counted.
    assert res.counts["arrivals"] == pool.started_jobs - pool.in_flight() - 1
    # Every job ran at the newest model: a delay counts arrivals during the job.
    delays = res.recorder.arrival_arrays()["delay"]
    assert delays.mean() == pytest.approx(expected, rel=0.1)


def test_open_system_runs_fedbuff_with_payloads() -> None:
    # Uniform client draws: the mean of the optima is the fixed point (see above).
    prob = HeteroQuadratic(centers(10, spread=1.0), noise=0.5)
    pool = OpenSystemPool(
        ExponentialTimes((1.0,) * 5 + (4.0,) * 5),
        3.0,
        local_sgd_task(prob, 2, 0.01),
        seed=1,
    )
    res = run(
        FedBuff(3, scale(1.0)),
        pool,
        np.zeros(3),
        stop=StopRule(max_updates=1000),
        rng=np.random.default_rng(0),
    )
    assert np.linalg.norm(res.params - prob.centers.mean(axis=0)) < 0.3
    jobs = res.recorder.arrival_arrays()["job"]
    assert np.unique(jobs).shape[0] == jobs.shape[0]  # ids stay unique


def test_open_system_arrival_is_a_plain_arrival() -> None:
    pool = OpenSystemPool(FixedTimes((1.0,)), 1.0, None, seed=0)
    token = pool.submit(0, np.zeros(1), 0)
    a = pool.next_arrival()
    assert isinstance(a, Arrival) and a.job == token and a.compute_time == 1.0
    assert math.isclose(a.time - a.compute_time, pool.now() - 1.0)


def test_open_system_loses_jobs_and_goes_on() -> None:
    timing = ExponentialTimes((1.0, 3.0))
    pool = OpenSystemPool(timing, 2.0, None, seed=4, dropout=BernoulliDropout(0.5))
    res = run(
        AsyncSGD(scale(0.1)),
        pool,
        np.zeros(2),
        stop=StopRule(max_time=1000.0),
        rng=np.random.default_rng(0),
    )
    done = pool.started_jobs - pool.in_flight() - 1  # the last pop is past the horizon
    assert res.counts["arrivals"] + pool.lost_jobs == done
    assert pool.lost_jobs == pytest.approx(done / 2, rel=0.1)
    assert sum(pool.lost_by_worker) == pool.lost_jobs
    assert pool.mean_concurrency() == pytest.approx(2.0 * 2.0, rel=0.1)  # unchanged


def test_unreliable_pool_refuses_an_open_system() -> None:
    with pytest.raises(ConfigError, match="dropout= to OpenSystemPool"):
        UnreliablePool(
            OpenSystemPool(FixedTimes((1.0,)), 1.0, None, 0),
            BernoulliDropout(0.1),
            seed=0,
        )
    with pytest.raises(ConfigError, match="phases list 1 workers"):
        UnreliablePool(
            SimulatedPool(FixedTimes((1.0, 1.0)), None, 0),
            PeriodicOffline(2.0, 1.0, (0.0,)),
            seed=0,
        )
