"""Simulator: reference update rates and delays, tie-break, clock, trace replay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.engine import StopRule, Target, run
from clipasync.errors import ConfigError, SimulationExhausted
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.sim import SimulatedPool, simulate_timing
from clipasync.timing import FixedTimes, TraceTimes, random_times, sqrt_times, two_speed
from clipasync.transforms import scale
from tests.conftest import noisy_quadratic_grad


@pytest.mark.parametrize("D", [1, 2, 4, 8, 16])
def test_two_speed_reference_values(D):
    # 8 workers at time 1, 8 at D: Σ 1/τ_i = 8 + 8/D updates per time unit. Each
    # update is seen by the 15 other jobs in flight: mean delay n − 1 = 15. A slow
    # job spans D time units, i.e. D(8 + 8/D) = 8D + 8 updates of which its own is
    # not counted: mean delay 8D + 7.
    s = simulate_timing(two_speed(8, 8, D), 200_000)
    assert s.updates_per_time == pytest.approx(8 + 8 / D, rel=1e-3)
    assert s.mean_delay() == pytest.approx(15, abs=0.02)
    assert s.mean_delay(worker=15) == pytest.approx(8 * D + 7, abs=0.05)
    assert s.mean_delay(worker=0) == pytest.approx((8 + 8 / D) - 1, abs=0.05)


def test_full_engine_matches_timing_only_path():
    # The fast path and SimulatedPool + engine must produce the same delays.
    for timing in (two_speed(8, 8, 4), random_times("lognormal", 1.0, 7, sigma=1.0)):
        s = simulate_timing(timing, 5000, seed=11)
        pool = SimulatedPool(timing, None, seed=11)
        res = run(
            AsyncSGD(scale(0.1)),
            pool,
            np.zeros(2),
            stop=StopRule(max_arrivals=5000),
            rng=np.random.default_rng(0),
        )
        a = res.recorder.arrival_arrays()
        np.testing.assert_array_equal(a["delay"], s.delays)
        np.testing.assert_array_equal(a["worker"], s.workers)
        np.testing.assert_array_equal(a["time"], s.times)


def test_arrivals_by_time_T_with_sqrt_times():
    # τ_i = √i: each worker finishes ⌊T/τ_i⌋ jobs by T.
    timing = sqrt_times(30)
    T = 57.3
    expected = sum(math.floor(T / math.sqrt(i)) for i in range(1, 31))
    pool = SimulatedPool(timing, None, seed=0)
    res = run(
        AsyncSGD(scale(0.1)),
        pool,
        np.zeros(1),
        stop=StopRule(max_time=T),
        rng=np.random.default_rng(0),
    )
    assert res.counts["arrivals"] == expected
    counts = np.bincount(res.recorder.arrival_arrays()["worker"], minlength=30)
    assert counts.tolist() == [math.floor(T / math.sqrt(i)) for i in range(1, 31)]


def test_ties_come_out_in_start_order_and_clock_is_monotone():
    pool = SimulatedPool(FixedTimes((2.0, 1.0, 2.0, 1.0)), None, seed=0)
    for w in (2, 0, 3, 1):
        pool.submit(w, None, 0)
    got = [(a.time, a.worker) for a in (pool.next_arrival() for _ in range(4))]
    assert got == [(1.0, 3), (1.0, 1), (2.0, 2), (2.0, 0)]
    times = []
    pool = SimulatedPool(random_times("pareto", 1.0, 5, alpha=1.5), None, seed=1)
    for w in range(5):
        pool.submit(w, None, 0)
    for _ in range(1000):
        a = pool.next_arrival()
        times.append(a.time)
        assert pool.now() == a.time
        pool.submit(a.worker, None, 0)
    assert np.all(np.diff(times) >= 0)


def test_fifo_queue_at_a_busy_worker():
    pool = SimulatedPool(FixedTimes((1.0, 5.0)), None, seed=0)
    first = pool.submit(0, None, 0)
    second = pool.submit(0, None, 1)  # queued behind the first
    a, b = pool.next_arrival(), pool.next_arrival()
    assert (a.job, a.time, a.version) == (first, 1.0, 0)
    assert (b.job, b.time, b.version, b.compute_time) == (second, 2.0, 1, 1.0)


def test_cancel_running_and_queued_jobs():
    pool = SimulatedPool(FixedTimes((3.0,)), None, seed=0)
    j1, j2, j3 = (pool.submit(0, None, v) for v in range(3))
    pool.cancel(j2)  # queued: removed
    pool.cancel(j1)  # running: worker freed at t=0, j3 starts now
    a = pool.next_arrival()
    assert (a.job, a.time) == (j3, 3.0)
    with pytest.raises(SimulationExhausted):
        pool.next_arrival()


def test_trace_replay_is_exact_and_exhaustion_is_clear(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("worker,compute_time\n0,1.5\n1,0.5\n0,2.0\n1,0.25\n")
    trace = TraceTimes.from_csv(path)
    pool = SimulatedPool(trace, None, seed=0)
    res = run(
        AsyncSGD(scale(0.1)),
        pool,
        np.zeros(1),
        stop=StopRule(max_time=100),
        rng=np.random.default_rng(0),
    )
    a = res.recorder.arrival_arrays()
    # w1: 0.5, 0.75; w0: 1.5, 3.5; then the trace is exhausted.
    assert a["time"].tolist() == [0.5, 0.75, 1.5, 3.5]
    assert a["compute_time"].tolist() == [0.5, 0.25, 1.5, 2.0]
    assert res.stop_reason == "exhausted"
    assert pool.exhausted_workers == {0, 1}
    cyc = TraceTimes.from_csv(path, cycle=True)
    assert cyc.job_time(0, 5) == 2.0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("worker,time\n0,1\n", "needs columns"),
        ("worker,compute_time\n0,-1\n", "positive"),
        ("worker,compute_time\n0,abc\n", "bad row"),
        ("worker,compute_time\n1,1.0\n", "no jobs for workers"),
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
    assert res.time < 1e4


def test_stop_rule_needs_a_budget():
    with pytest.raises(ConfigError, match="at least one"):
        StopRule()
    with pytest.raises(ConfigError, match="max_time must be positive"):
        StopRule(max_time=-1)


class _BadStationary:
    """A stationary model that draws a zero compute time for worker 1."""

    num_workers = 2
    stationary = True

    def sample(self, worker, now, rng):
        return float(self.sample_block(worker, rng, 1)[0])

    def sample_block(self, worker, rng, size):
        out = rng.exponential(1.0, size)
        if worker == 1:
            out[size // 2] = 0.0
        return out

    def mean_times(self):
        return np.ones(2)


def test_vectorised_path_rejects_non_positive_times():
    with pytest.raises(ConfigError, match=r"positive and finite.*worker 1"):
        simulate_timing(_BadStationary(), 1000)  # type: ignore[arg-type]
