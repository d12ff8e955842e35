"""The discrete-event simulator (clipasync.sim.pool): arrivals by time T, tie-break,
clock, FIFO queues, cancels, trace replay, per-worker streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import SimulationExhausted
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes, TraceTimes, random_times, sqrt_times
from clipasync.transforms import scale


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


def test_worker_streams_are_made_once_at_first_use() -> None:
    from clipasync.sim.pool import WorkerStreams

    streams = WorkerStreams(7, Stream.AVAILABILITY, 3)
    assert streams.peek(1) is None
    rng = streams(1)
    assert streams(1) is rng and streams.peek(1) is rng and streams.peek(0) is None
    first = rng.random()
    assert first == stream(7, Stream.AVAILABILITY, 1).random()
    state = rng.bit_generator.state
    again = WorkerStreams(7, Stream.AVAILABILITY, 3)
    again.restore(1, state)
    assert again(1).random() == rng.random()
