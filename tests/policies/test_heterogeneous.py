"""Malenia SGD and Ringleader ASGD (heterogeneous data across workers): hand
trajectories, the harmonic-mean condition, Ringleader's rounds against a port of the
public simulator's loop, its delay bound, and the per-worker table's weighting.

Worker i holds f_i(x) = ½‖x − c_i‖² and its job returns the exact gradient x − c_i,
so the table mean (1/n) Σ_i G_i/b_i at one point x is x − c̄ with c̄ = mean c_i.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.malenia import Malenia
from clipasync.policies.rennala import Rennala
from clipasync.policies.ringleader import Ringleader
from clipasync.sim import SimulatedPool
from clipasync.timing import ExponentialTimes, FixedTimes
from clipasync.transforms import chain, clip_by_norm, scale
from clipasync.types import Vector

C2 = np.array([[0.0, 0.0], [2.0, 4.0]])  # c̄ = (1, 2)
X0 = np.array([3.0, 6.0])


def hetero_task(centers: np.ndarray) -> Any:
    def task(worker: int, x: Vector, rng: np.random.Generator) -> Vector:
        del rng
        return x - centers[worker]

    return task


def simulate(
    policy: Any, times: tuple[float, ...], stop: StopRule, centers: np.ndarray = C2
) -> RunResult:
    pool = SimulatedPool(FixedTimes(times), hetero_task(centers), seed=0)
    return run(policy, pool, X0, stop=stop, rng=np.random.default_rng(0))


# ------------------------------------------------------------------- Malenia SGD


def test_malenia_hand_trajectory_waits_for_the_harmonic_mean():
    # n = 2, times (1, 3), S = 4: step once 2/(1/b0 + 1/b1) >= 2. At t=3 the counts
    # are (3, 1): 4 gradients (Rennala's B = 4 would step) but a harmonic mean of
    # 1.5. t=6: w1's 2nd (started at 3, before w0's 6th) makes (5, 2): 2.86 >= 2,
    # step x1 = x0 − ½(x0 − c̄) = (2, 4); w0's job at x0 is cancelled and both
    # restart at t=6; the next round repeats: x2 = (1.5, 3) at t=12.
    res = simulate(
        Malenia(scale(0.5), batch_size=4), (1.0, 3.0), StopRule(max_updates=2)
    )
    np.testing.assert_array_equal(res.params, [1.5, 3.0])
    assert res.time == 12.0
    assert res.counts["arrivals"] == 14 and res.counts["cancelled"] == 2
    a = res.recorder.arrival_arrays()
    assert a["time"][a["applied"]].tolist() == [6.0, 12.0]
    assert a["worker"][a["applied"]].tolist() == [1, 1]
    rennala = simulate(
        Rennala(scale(0.5), batch_size=4), (1.0, 3.0), StopRule(max_updates=1)
    )
    assert rennala.time == 3.0


def test_malenia_late_jobs_finish_and_are_discarded_without_cancel():
    # As above, but w0's job at x0 (started t=5) finishes at t=7 and is discarded;
    # w0 restarts at x1: round 2 is (4, 2) at t=12 (harmonic mean 2.67), same x.
    res = simulate(
        Malenia(scale(0.5), batch_size=4, cancel_stale=False),
        (1.0, 3.0),
        StopRule(max_updates=2),
    )
    np.testing.assert_array_equal(res.params, [1.5, 3.0])
    assert res.time == 12.0
    assert res.counts["discarded"] == 1 and res.counts["cancelled"] == 0


def test_malenia_with_s_at_most_n_steps_once_every_worker_sent_one():
    # The public simulator's rule: times (1, 2.5), S = 2: step at t=2.5 with counts
    # (2, 1); the table mean still weighs each worker ½: x1 = (2, 4).
    res = simulate(
        Malenia(scale(0.5), batch_size=2), (1.0, 2.5), StopRule(max_updates=1)
    )
    np.testing.assert_array_equal(res.params, [2.0, 4.0])
    assert res.time == 2.5


def test_malenia_is_unbiased_where_rennala_follows_the_fast_worker():
    # One fast worker (c0) and a slow one (c1): the fixed point of Malenia is the
    # minimiser c̄ of f = ½(f0 + f1); Rennala's batch is mostly the fast worker's.
    stop = StopRule(max_updates=60)
    times = (1.0, 10.0)
    mal = simulate(Malenia(scale(0.5), batch_size=8), times, stop)
    ren = simulate(Rennala(scale(0.5), batch_size=8), times, stop)
    np.testing.assert_allclose(mal.params, [1.0, 2.0], atol=1e-12)
    assert np.linalg.norm(ren.params - np.array([1.0, 2.0])) > 0.5


def reference_malenia(
    times: tuple[float, ...], centers: np.ndarray, gamma: float, updates: int
) -> tuple[list[Vector], list[float]]:
    """A port of the public simulator's ``MaleniaSGD.step``: reset every worker at
    x_k, collect until each has sent one, step with the mean of per-worker means."""
    n, x, now = len(times), X0.copy(), 0.0
    xs, step_times = [x.copy()], []
    for _ in range(updates):
        heap = [(now + times[i], i) for i in range(n)]  # reset_all_nodes
        heapq.heapify(heap)
        sums, cnt = [np.zeros(2) for _ in range(n)], [0] * n
        while min(cnt) == 0:
            now, i = heapq.heappop(heap)
            sums[i], cnt[i] = sums[i] + (x - centers[i]), cnt[i] + 1
            heapq.heappush(heap, (now + times[i], i))
        x = x - gamma * sum(s / c for s, c in zip(sums, cnt, strict=True)) / n
        xs.append(x.copy())
        step_times.append(now)
    return xs, step_times


def test_malenia_with_s_equal_n_matches_a_port_of_the_public_simulator():
    times = (1.0, 1.37, 2.11, 7.3)
    centers = np.array([[0.0, 0.0], [2.0, 4.0], [-1.0, 3.0], [5.0, -2.0]])
    xs, step_times = reference_malenia(times, centers, 0.25, 12)
    got = [X0]
    for k in range(1, 13):
        res = simulate(
            Malenia(scale(0.25), batch_size=4), times, StopRule(max_updates=k), centers
        )
        got.append(res.params)
        assert res.time == pytest.approx(step_times[k - 1], abs=1e-12)
    np.testing.assert_allclose(np.array(got), np.array(xs), rtol=1e-13, atol=1e-13)


def test_malenia_rejects_a_bad_batch_size():
    with pytest.raises(ConfigError, match="batch_size"):
        Malenia(scale(0.1), batch_size=0)


# ---------------------------------------------------------------- Ringleader ASGD


def test_ringleader_hand_trajectory():
    # n = 2, times (1, 3), γ = ½. Phase 1: w0 at t=1, 2 (x0) fills its entry; t=3
    # w1 (started first) completes the table: ḡ = ½[(x0−c0) + (x0−c1)] = (2, 4),
    # x1 = (2, 4), w1 gets x1. Phase 2: t=3 w0 (at x0, b0 = 3) is pending: ḡ is
    # unchanged, x2 = (1, 2); round over, w0 gets x2. Round 2, Phase 1: w0 at t=4, 5
    # (x2 − c0 = (1, 2)); t=6 w1 at x1 (x1 − c1 = 0) completes: ḡ = (0.5, 1),
    # x3 = (0.75, 1.5); t=6 w0 (at x2, b0 = 3): x4 = (0.5, 1).
    res = simulate(Ringleader(scale(0.5)), (1.0, 3.0), StopRule(max_updates=4))
    np.testing.assert_array_equal(res.params, [0.5, 1.0])
    a = res.recorder.arrival_arrays()
    assert a["worker"].tolist() == [0, 0, 1, 0, 0, 0, 1, 0]
    assert a["applied"].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert a["delay"].tolist() == [0, 0, 0, 1, 0, 0, 1, 1]
    assert res.counts["discarded"] == 0 and res.counts["cancelled"] == 0


def reference_ringleader(
    times: tuple[float, ...], centers: np.ndarray, gamma: float, updates: int
) -> tuple[list[Vector], int]:
    """A port of the public simulator's ``RingleaderASGD.step`` loop (Phase 1 then
    Phase 2 as nested loops over a heap of finish times), with exact gradients
    x − c_i; returns the iterates and the number of buffered gradients."""
    n = len(times)
    x = X0.copy()
    heap = [(times[i], i, x.copy()) for i in range(n)]
    heapq.heapify(heap)
    sums = [np.zeros(2) for _ in range(n)]
    cnt = [0] * n
    nxt_sums, nxt_cnt = [np.zeros(2) for _ in range(n)], [0] * n
    xs, buffered = [x.copy()], 0

    def mean() -> Vector:
        return sum(s / c for s, c in zip(sums, cnt, strict=True)) / n

    while len(xs) <= updates:
        last = -1
        while min(cnt) == 0:  # Phase 1
            t, i, at = heapq.heappop(heap)
            sums[i] = sums[i] + (at - centers[i])
            cnt[i] += 1
            if min(cnt) > 0:
                last = i
                break
            heapq.heappush(heap, (t + times[i], i, x.copy()))
        x = x - gamma * mean()
        xs.append(x.copy())
        heapq.heappush(heap, (t + times[last], last, x.copy()))
        pending = set(range(n)) - {last}
        while pending:  # Phase 2
            t, i, at = heapq.heappop(heap)
            g = at - centers[i]
            if i in pending:
                sums[i], cnt[i] = sums[i] + g, cnt[i] + 1
                x = x - gamma * mean()
                xs.append(x.copy())
                pending.discard(i)
            else:
                nxt_sums[i], nxt_cnt[i] = nxt_sums[i] + g, nxt_cnt[i] + 1
                buffered += 1
            heapq.heappush(heap, (t + times[i], i, x.copy()))
        sums, cnt = nxt_sums, nxt_cnt
        nxt_sums, nxt_cnt = [np.zeros(2) for _ in range(n)], [0] * n
    return xs[: updates + 1], buffered


def test_ringleader_matches_a_port_of_the_public_simulator_loop():
    # Times without ties (the simulator's heap breaks ties by worker index, ours by
    # start order); four workers, one slow, so Phase 2 buffers fast gradients.
    times = (1.0, 1.37, 2.11, 7.3)
    centers = np.array([[0.0, 0.0], [2.0, 4.0], [-1.0, 3.0], [5.0, -2.0]])
    xs, buffered = reference_ringleader(times, centers, 0.25, 24)
    pool = SimulatedPool(FixedTimes(times), hetero_task(centers), seed=0)
    state: list[Vector] = [X0]
    policy = Ringleader(scale(0.25))

    class Watch:
        def __getattr__(self, name: str) -> Any:
            return getattr(policy, name)

        def on_arrival(self, s: Any, arrival: Any) -> Any:
            s, reply = policy.on_arrival(s, arrival)
            if reply.applied:
                state.append(s.x)
            return s, reply

    res = run(
        Watch(),  # type: ignore[arg-type]
        pool,
        X0,
        stop=StopRule(max_updates=24),
        rng=np.random.default_rng(0),
    )
    a = res.recorder.arrival_arrays()
    assert len(np.unique(a["time"])) == len(a["time"])  # no ties
    assert buffered > 0
    np.testing.assert_allclose(np.array(state), np.array(xs), rtol=1e-13, atol=1e-13)


def test_ringleader_delays_stay_below_2n_minus_2_and_nothing_is_wasted():
    n = 5
    times = ExponentialTimes(tuple(1.0 + 3.0 * i for i in range(n)))
    centers = np.random.default_rng(1).normal(size=(n, 2))
    pool = SimulatedPool(times, hetero_task(centers), seed=4)
    res = run(
        Ringleader(chain(clip_by_norm(1.0), scale(0.1))),
        pool,
        X0,
        stop=StopRule(max_updates=400),
        rng=np.random.default_rng(0),
    )
    a = res.recorder.arrival_arrays()
    assert a["delay"].max() <= 2 * n - 2
    assert res.counts["discarded"] == res.counts["cancelled"] == 0
    # Every round makes exactly n updates, one per worker.
    applied = a["worker"][a["applied"]]
    for r in range(len(applied) // n):
        assert sorted(applied[r * n : (r + 1) * n].tolist()) == list(range(n))
    # The fixed point is the minimiser c̄ of f = (1/n) Σ f_i.
    np.testing.assert_allclose(res.params, centers.mean(axis=0), atol=1e-6)
