"""Every policy against a hand-computed trajectory, plus degenerate equivalences.

The hand cases use f(x) = ½x₁² + x₂², so ∇f(x) = (x₁, 2x₂), x₀ = (1, 1), γ = ½, and
workers with fixed times (1, 2, 3): ties at equal finish times go to the job that
started first.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.base import next_worker
from clipasync.policies.fedasync import FedAsync
from clipasync.policies.fedbuff import FedBuff
from clipasync.policies.rennala import Rennala, SyncMinibatch
from clipasync.policies.ringmaster import Ringmaster
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes, random_times
from clipasync.transforms import chain, clip_by_norm, scale, scale_by_delay
from clipasync.types import Arrival
from tests.conftest import ScriptedRng, diag_quadratic_grad, noisy_quadratic_grad

X0 = np.array([1.0, 1.0])


def trajectory(policy, times, stop, task=diag_quadratic_grad, rng=None):
    pool = SimulatedPool(FixedTimes(times), task, seed=0)
    res = run(policy, pool, X0, stop=stop, rng=rng or np.random.default_rng(0))
    return res


def test_vanilla_hand_trajectory():
    # t=1 w0@x0: g=(1,2) → x1=(0.5,0);  t=2 w1@x0 (started first): g=(1,2) → x2=(0,-1)
    # t=2 w0@x1: g=(0.5,0) → x3=(-0.25,-1); t=3 w2@x0: g=(1,2) → x4=(-0.75,-2)
    # t=3 w0@x3: g=(-0.25,-2) → x5=(-0.625,-1).
    res = trajectory(AsyncSGD(scale(0.5)), (1.0, 2.0, 3.0), StopRule(max_updates=5))
    np.testing.assert_array_equal(res.params, [-0.625, -1.0])
    a = res.recorder.arrival_arrays()
    assert a["worker"].tolist() == [0, 1, 0, 2, 0]
    assert a["delay"].tolist() == [0, 1, 1, 3, 1]
    assert a["time"].tolist() == [1.0, 2.0, 2.0, 3.0, 3.0]
    assert res.time == 3.0 and res.stop_reason == "max_updates"


def test_clipped_hand_trajectory():
    # c = 1: ‖(1,2)‖ = √5 is clipped to (1,2)/√5; (0.5−1/(2√5)) etc.
    s5 = math.sqrt(5.0)
    x1 = np.array([1 - 0.5 / s5, 1 - 1.0 / s5])  # w0 at x0
    x2 = x1 - 0.5 * np.array([1.0, 2.0]) / s5  # w1 at x0
    g = np.array([x1[0], 2 * x1[1]])  # w0 at x1, norm < 1? check below
    assert np.linalg.norm(g) > 1
    x3 = x2 - 0.5 * g / np.linalg.norm(g)
    res = trajectory(
        AsyncSGD(chain(clip_by_norm(1.0), scale(0.5))),
        (1.0, 2.0, 3.0),
        StopRule(max_updates=3),
    )
    np.testing.assert_allclose(res.params, x3, rtol=1e-15)
    a = res.recorder.arrival_arrays()
    np.testing.assert_allclose(a["pre_clip_norm"], [s5, s5, np.linalg.norm(g)])
    assert a["clipped"].tolist() == [1.0, 1.0, 1.0]


def test_ringmaster_hand_trajectory():
    # As vanilla until t=3, where w2's gradient has delay 3 ≥ R=2: discarded, w2
    # restarts at x3. Then w0@x3 (delay 0): x4 = (-0.25,-1) - ½(-0.25,-2) = (-0.125,0).
    res = trajectory(
        Ringmaster(scale(0.5), max_delay=2), (1.0, 2.0, 3.0), StopRule(max_updates=4)
    )
    np.testing.assert_array_equal(res.params, [-0.125, 0.0])
    a = res.recorder.arrival_arrays()
    assert a["discarded"].tolist() == [False, False, False, True, False]
    assert res.counts["discarded"] == 1


def test_ringmaster_cancel_stale_restarts_hopeless_jobs():
    # Times (1, 2.5), R=2. w0 updates at t=1,2,3,4 (versions 1..4). At t=2 (version 2)
    # w1's job from version 0 can only arrive with delay ≥ 2: cancelled, restarted at
    # version 2 (due 4.5); at t=4 (version 4) cancelled again. It never arrives.
    res = trajectory(
        Ringmaster(scale(0.5), max_delay=2, cancel_stale=True),
        (1.0, 2.5),
        StopRule(max_time=4.9),
    )
    a = res.recorder.arrival_arrays()
    assert res.counts["cancelled"] == 2 and res.counts["discarded"] == 0
    assert a["worker"].tolist() == [0, 0, 0, 0]
    # Without cancellation w1 finishes at t=2.5 with delay 2 and is discarded.
    res = trajectory(
        Ringmaster(scale(0.5), max_delay=2), (1.0, 2.5), StopRule(max_time=4.9)
    )
    assert res.counts["cancelled"] == 0 and res.counts["discarded"] == 1


def test_rennala_hand_trajectory():
    # B=2. t=1 w0@x0 (1 of 2), w0 restarts at x0. t=2 w1@x0 (2 of 2) → x1=(0.5,0).
    # t=2 w0@x0: stale, discarded. t=3 w2@x0 discarded; w0@x1 (1 of 2).
    # t=4 w1@x1 (started t=2, before w0's t=3 job) (2 of 2) → x2 = (0.25, 0).
    res = trajectory(
        Rennala(scale(0.5), batch_size=2, cancel_stale=False),
        (1.0, 2.0, 3.0),
        StopRule(max_updates=2),
    )
    np.testing.assert_array_equal(res.params, [0.25, 0.0])
    assert res.counts["discarded"] == 2
    assert res.time == 4.0


def test_rennala_cancelling_hand_trajectory():
    # B=2, cancel_stale. t=1 w0@x0 (1 of 2), restarts at x0. t=2 w1@x0 (2 of 2) →
    # x1=(0.5,0); the jobs of w0 and w2 at x0 are cancelled, all restart at x1
    # (due 3, 4, 5). t=3 w0@x1 (1 of 2). t=4 w1@x1 (2 of 2) → x2=(0.25,0), and the
    # jobs of w0 and w2 are cancelled again: 4 cancellations, no discards.
    res = trajectory(
        Rennala(scale(0.5), batch_size=2, cancel_stale=True),
        (1.0, 2.0, 3.0),
        StopRule(max_updates=2),
    )
    np.testing.assert_array_equal(res.params, [0.25, 0.0])
    assert res.counts["discarded"] == 0 and res.counts["cancelled"] == 4
    assert res.time == 4.0


def test_minibatch_hand_trajectory():
    # One gradient per worker at x0, step at t=3 → (0.5,0); again at t=6 → (0.25,0).
    res = trajectory(
        SyncMinibatch(scale(0.5)), (1.0, 2.0, 3.0), StopRule(max_updates=2)
    )
    np.testing.assert_array_equal(res.params, [0.25, 0.0])
    assert res.time == 6.0 and res.counts["arrivals"] == 6


def test_random_assignment_fifo_hand_trajectory():
    # Algorithm 2, 2 workers of times (1, 3), scripted choices 0,0,1,1,0,0,0,0.
    # t=1 w0@x0 → x1=(0.5,0); next job → w0 (idle) at x1.
    # t=2 w0@x1 → x2=(0.25,0); → w0 at x2.
    # t=3 w1@x0 (its job started first) → x3=(-0.25,-1); → w1 at x3 (due 6).
    # t=3 w0@x2 → x4=(-0.375,-1); → w1, busy: queued with x4 (version 4); w0 idles.
    # t=6 w1@x3 (delay 1) → x5=(-0.25,0); w1 starts its queued job (due 9); → w0 at x5.
    # t=7 w0@x5 → x6=(-0.125,0); → w0.  t=8 w0@x6 → x7=(-0.0625,0); → w0 (due 9).
    # t=9 w1's queued job at x4 (started before w0's): delay 7−4=3,
    #     g=(-0.375,-2) → x8=(0.125,1).
    policy = AsyncSGD(scale(0.5), assign="random")
    res = trajectory(
        policy,
        (1.0, 3.0),
        StopRule(max_updates=8),
        rng=ScriptedRng([0, 0, 1, 1, 0, 0, 0, 0]),  # type: ignore[arg-type]
    )
    np.testing.assert_array_equal(res.params, [0.125, 1.0])
    a = res.recorder.arrival_arrays()
    assert a["worker"].tolist() == [0, 0, 1, 0, 1, 0, 0, 1]
    assert a["time"].tolist() == [1.0, 2.0, 3.0, 3.0, 6.0, 7.0, 8.0, 9.0]
    assert a["delay"].tolist() == [0, 0, 2, 1, 1, 0, 0, 3]


# --- degenerate equivalences on a noisy problem with random times -------------


def noisy_run(policy, num_workers=6, seed=3, updates=300, timing=None):
    timing = timing or random_times("exponential", 1.0, num_workers)
    pool = SimulatedPool(timing, noisy_quadratic_grad, seed=seed)
    return run(
        policy,
        pool,
        np.full(5, 3.0),
        stop=StopRule(max_updates=updates),
        rng=stream(seed, Stream.POLICY),
    )


def test_clip_infinity_equals_vanilla():
    a = noisy_run(AsyncSGD(chain(clip_by_norm(None), scale(0.05))))
    b = noisy_run(AsyncSGD(scale(0.05)))
    np.testing.assert_array_equal(a.params, b.params)


def test_ringmaster_infinite_threshold_equals_vanilla():
    a = noisy_run(Ringmaster(scale(0.05), max_delay=math.inf))
    b = noisy_run(AsyncSGD(scale(0.05)))
    np.testing.assert_array_equal(a.params, b.params)
    assert a.counts["discarded"] == 0


def test_delay_adaptive_with_small_delays_equals_vanilla():
    # Equal fixed times: every delay is exactly n − 1 < n, so γ·min(1, n/delay) = γ.
    timing = FixedTimes((1.0,) * 6)
    a = noisy_run(AsyncSGD(scale_by_delay(0.05)), timing=timing)
    b = noisy_run(AsyncSGD(scale(0.05)), timing=timing)
    assert a.recorder.arrival_arrays()["delay"].max() == 5
    np.testing.assert_array_equal(a.params, b.params)


def test_delay_adaptive_differs_when_delays_exceed_n():
    timing = FixedTimes((1.0,) * 5 + (20.0,))
    a = noisy_run(AsyncSGD(scale_by_delay(0.05)), timing=timing)
    b = noisy_run(AsyncSGD(scale(0.05)), timing=timing)
    assert a.recorder.arrival_arrays()["delay"].max() > 6
    assert not np.array_equal(a.params, b.params)


def test_one_worker_is_plain_sgd():
    seed, gamma, steps = 7, 0.1, 50
    res = noisy_run(
        AsyncSGD(chain(clip_by_norm(2.0), scale(gamma))),
        num_workers=1,
        seed=seed,
        updates=steps,
    )
    rng = stream(seed, Stream.ORACLE, 0)
    x = np.full(5, 3.0)
    for _ in range(steps):
        g = noisy_quadratic_grad(0, x, rng)
        x = x - gamma * g * min(1.0, 2.0 / np.linalg.norm(g))
    np.testing.assert_allclose(res.params, x, rtol=1e-14)
    assert set(res.recorder.arrival_arrays()["delay"].tolist()) == {0}


def test_rennala_batch_n_matches_minibatch_under_equal_times():
    timing = FixedTimes((1.0,) * 4)
    # Cancelling keeps the workers in lockstep; with the paper's rule the first
    # n - 1 arrivals of a round restart at the old point and are wasted.
    a = noisy_run(
        Rennala(scale(0.05), batch_size=4, cancel_stale=True),
        timing=timing,
        updates=30,
    )
    b = noisy_run(SyncMinibatch(scale(0.05)), timing=timing, updates=30)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12)


def test_runs_are_deterministic_and_seed_dependent():
    p = AsyncSGD(chain(clip_by_norm(1.0), scale(0.05)), assign="random")
    a, b, c = noisy_run(p, seed=1), noisy_run(p, seed=1), noisy_run(p, seed=2)
    np.testing.assert_array_equal(a.params, b.params)
    for col, va in a.recorder.arrival_arrays().items():
        np.testing.assert_array_equal(va, b.recorder.arrival_arrays()[col], err_msg=col)
    assert not np.array_equal(a.params, c.params)


# --- bad input ----------------------------------------------------------------


def nan_every_third(worker, x, rng):
    nan_every_third.calls += 1
    g = x + rng.standard_normal(x.shape)
    if nan_every_third.calls % 3 == 0:
        g[0] = np.nan if nan_every_third.calls % 2 else np.inf
    return g


@pytest.mark.parametrize(
    "policy",
    [
        AsyncSGD(scale(0.05)),
        AsyncSGD(chain(clip_by_norm(1.0), scale(0.05)), assign="random"),
        Ringmaster(scale(0.05), max_delay=4),
        Rennala(scale(0.05), batch_size=2),
        SyncMinibatch(scale(0.05)),
    ],
    ids=lambda p: p.name,
)
def test_nonfinite_gradients_are_counted_and_skipped(policy):
    nan_every_third.calls = 0
    pool = SimulatedPool(FixedTimes((1.0,) * 4), nan_every_third, seed=0)
    res = run(
        policy,
        pool,
        np.ones(3),
        stop=StopRule(max_arrivals=120),
        rng=np.random.default_rng(0),
    )
    assert np.isfinite(res.params).all()
    assert res.counts["applied"] > 0
    assert res.recorder.arrival_arrays()["skipped"].sum() == res.counts["skipped"]
    if isinstance(policy, Rennala):
        # A stale NaN gradient is discarded before it is inspected: never applied.
        assert 0 < res.counts["skipped"] <= 40
    else:
        assert res.counts["skipped"] == 40


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Ringmaster(scale(0.1), max_delay=0), "max_delay"),
        (lambda: Ringmaster(scale(0.1), max_delay=2.5), "max_delay"),
        (lambda: Rennala(scale(0.1), batch_size=0), "batch_size"),
        (lambda: AsyncSGD(scale(0.1), assign="roundrobin"), "assign"),  # type: ignore[arg-type]
    ],
)
def test_bad_hyperparameters_raise(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_policies_do_not_mutate_x0():
    x0 = np.full(5, 3.0)
    before = x0.copy()
    pool = SimulatedPool(random_times("exponential", 1.0, 3), noisy_quadratic_grad, 0)
    run(
        AsyncSGD(scale(0.1)),
        pool,
        x0,
        stop=StopRule(max_updates=20),
        rng=np.random.default_rng(0),
    )
    np.testing.assert_array_equal(x0, before)


# ------------------------------------------------------------------- restart rules


def _arrive(policy, state, worker, version, g):
    return policy.on_arrival(state, Arrival(0, worker, version, np.asarray(g), 1.0))


def test_ringmaster_restart_makes_every_job_fresh():
    # n=3, R=2, cancel_stale. w0 arrives at v0 with g=(1,2): x1=(0.5,0), its record
    # becomes 1, the others stay at 0. A lost-and-restarted run dispatches everyone
    # at version 1: the record is (1,1,1), x and version are kept.
    policy = Ringmaster(scale(0.5), max_delay=2, cancel_stale=True)
    state = policy.init(X0, 3, np.random.default_rng(0))
    state, _ = _arrive(policy, state, 0, 0, [1.0, 2.0])
    assert state.dispatched == (1, 0, 0)
    fresh = policy.restart(state)
    assert fresh.dispatched == (1, 1, 1) and fresh.version == 1
    np.testing.assert_array_equal(policy.params(fresh), [0.5, 0.0])
    assert policy.start(fresh) == (0, 1, 2)
    # w0 at v1 makes version 2 (limit 0): without the restart the jobs of w1 and w2
    # (dispatched at v0) are hopeless and cancelled; after it they are fresh.
    _, old_reply = _arrive(policy, state, 0, 1, [0.5, 0.0])
    _, new_reply = _arrive(policy, fresh, 0, 1, [0.5, 0.0])
    assert old_reply.cancel == (1, 2) and new_reply.cancel == ()


def test_minibatch_restart_reasks_only_the_missing_workers():
    # n=3 at x0: w0 and w2 have sent (1,2) and (3,0); after a restart only w1 gets a
    # job; its (2,4) completes the round: mean (2,2), x1 = (1,1) - ½(2,2) = (0,0).
    policy = SyncMinibatch(scale(0.5))
    state = policy.init(X0, 3, np.random.default_rng(0))
    assert policy.start(state) == (0, 1, 2)
    state, _ = _arrive(policy, state, 0, 0, [1.0, 2.0])
    state, _ = _arrive(policy, state, 2, 0, [3.0, 0.0])
    state = policy.restart(state)
    assert policy.start(state) == (1,)
    state, reply = _arrive(policy, state, 1, 0, [2.0, 4.0])
    np.testing.assert_array_equal(policy.params(state), [0.0, 0.0])
    assert reply.applied and reply.dispatch == (0, 1, 2)
    assert policy.version(state) == 1 and policy.start(state) == (0, 1, 2)


@pytest.mark.parametrize(
    "policy",
    [
        AsyncSGD(scale(0.5), assign="random"),
        Rennala(scale(0.5), batch_size=2),
        FedAsync(0.5),
        FedBuff(2, scale(1.0)),
    ],
    ids=lambda p: p.name,
)
def test_restart_keeps_the_state_of_the_other_policies(policy):
    # Rennala keeps its partial batch at x_k (those gradients are still fresh),
    # FedBuff its buffer, AsyncSGD and FedAsync their random stream.
    state = policy.init(X0, 3, np.random.default_rng(0))
    state, _ = _arrive(policy, state, 1, 0, [1.0, 2.0])
    again = policy.restart(state)
    assert policy.version(again) == policy.version(state)
    np.testing.assert_array_equal(policy.params(again), policy.params(state))
    assert again is state
    assert policy.start(again) == (0, 1, 2)


def test_next_worker_same_and_random():
    state = AsyncSGD(scale(0.1)).init(X0, 4, ScriptedRng([3, 0]))
    assert next_worker("same", state, 2) == (2,)
    assert next_worker("random", state, 2) == (3,)
    assert next_worker("random", state, 2) == (0,)
