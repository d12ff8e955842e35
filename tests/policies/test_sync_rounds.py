"""The synchronous baselines: m-synchronous rounds (first m of n) and synchronous
FedAvg / local SGD. Hand trajectories, m = n is minibatch SGD, client sampling,
FedAvg with one local step is minibatch SGD."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.fedavg import FedAvg
from clipasync.policies.msync import MSync
from clipasync.policies.rennala import SyncMinibatch
from clipasync.problems.local_training import local_sgd_task
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.timing import ExponentialTimes, FixedTimes, LogNormalTimes
from clipasync.transforms import scale
from clipasync.types import Task
from tests.conftest import HeteroQuadratic, diag_quadratic_grad, noisy_quadratic_grad

X0 = np.array([1.0, 1.0])


def simulate(
    policy: Any,
    times: tuple[float, ...],
    stop: StopRule,
    task: Task = diag_quadratic_grad,
    x0: np.ndarray = X0,
) -> RunResult:
    pool = SimulatedPool(FixedTimes(times), task, seed=0)
    return run(policy, pool, x0, stop=stop, rng=np.random.default_rng(0))


# ------------------------------------------------------------------------- m-sync


def test_m_sync_hand_trajectory_drops_the_late_job():
    # f = ½x₁² + x₂², γ = ½, times (1, 2, 3), m = 2. t=1 w0, t=2 w1 at x0: step with
    # the mean (1, 2): x1 = (0.5, 0); w0, w1 get x1 (due 3, 4). t=3 w2's job at x0
    # (started first) is dropped and w2 gets x1 (due 6); w0 at x1. t=4 w1 at x1:
    # x2 = (0.25, 0). t=5 w0 at x2; t=6 w2's job at x1 dropped, w1 at x2:
    # x3 = (0.125, 0). Minibatch SGD (m = n) needs t=6 for two steps.
    res = simulate(
        MSync(scale(0.5), quorum=2), (1.0, 2.0, 3.0), StopRule(max_updates=3)
    )
    np.testing.assert_array_equal(res.params, [0.125, 0.0])
    a = res.recorder.arrival_arrays()
    assert a["time"].tolist() == [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 6.0]
    assert a["worker"].tolist() == [0, 1, 2, 0, 1, 0, 2, 1]
    assert a["discarded"].tolist() == [0, 0, 1, 0, 0, 0, 1, 0]
    assert res.counts["cancelled"] == 0 and res.time == 6.0


def test_m_sync_cancelling_hand_trajectory():
    # As above, but each step cancels w2's job and restarts all three at the new
    # point: the same iterates and step times, 3 cancellations and no discards.
    res = simulate(
        MSync(scale(0.5), quorum=2, cancel_stale=True),
        (1.0, 2.0, 3.0),
        StopRule(max_updates=3),
    )
    np.testing.assert_array_equal(res.params, [0.125, 0.0])
    assert res.time == 6.0
    assert res.counts["cancelled"] == 3 and res.counts["discarded"] == 0
    assert res.counts["arrivals"] == 6


@pytest.mark.parametrize("cancel_stale", [False, True])
def test_m_sync_with_m_equal_n_is_minibatch_sgd(cancel_stale: bool) -> None:
    def go(policy: Any) -> RunResult:
        pool = SimulatedPool(
            ExponentialTimes((1.0, 2.0, 3.0, 4.0)), noisy_quadratic_grad, seed=3
        )
        return run(
            policy,
            pool,
            np.full(5, 3.0),
            stop=StopRule(max_updates=40),
            rng=stream(3, Stream.POLICY),
        )

    a = go(MSync(scale(0.05), quorum=4, cancel_stale=cancel_stale))
    b = go(SyncMinibatch(scale(0.05)))
    assert a.params.tobytes() == b.params.tobytes()
    ra, rb = a.recorder.arrival_arrays(), b.recorder.arrival_arrays()
    for col in ("time", "worker", "job", "version", "delay"):
        np.testing.assert_array_equal(ra[col], rb[col], err_msg=col)
    assert a.counts == b.counts


def test_m_sync_rejects_a_quorum_above_n():
    with pytest.raises(ConfigError, match="quorum"):
        MSync(scale(0.1), quorum=0)
    with pytest.raises(ConfigError, match=r"quorum \(m\) = 4 exceeds"):
        simulate(MSync(scale(0.1), quorum=4), (1.0, 2.0), StopRule(max_updates=1))


# ------------------------------------------------------------------------- FedAvg

C2 = np.array([[0.0, 0.0], [2.0, 4.0]])  # c̄ = (1, 2)


def test_fedavg_hand_trajectory_averages_the_client_models():
    # f_i = ½‖x − c_i‖², Q = 2 local steps of η_l = ½: y₁ = x − ½(x − c_i),
    # Δ_i = y₂ − x = −¾(x − c_i). η_g = 1: x_{k+1} = x + mean Δ = ¼x + ¾c̄, the mean
    # of the two client models. From (3, 6): (1.5, 3) at t=3, (1.125, 2.25) at t=6.
    task = local_sgd_task(HeteroQuadratic(C2), 2, 0.5)
    res = simulate(
        FedAvg(scale(1.0)),
        (1.0, 3.0),
        StopRule(max_updates=2),
        task,
        np.array([3.0, 6.0]),
    )
    np.testing.assert_array_equal(res.params, [1.125, 2.25])
    assert res.time == 6.0 and res.counts["arrivals"] == 4
    # A server stepsize η_g = ½ takes half the averaged step: (3,6) − ⅜(2,4).
    half = simulate(
        FedAvg(scale(0.5)),
        (1.0, 3.0),
        StopRule(max_updates=1),
        task,
        np.array([3.0, 6.0]),
    )
    np.testing.assert_array_equal(half.params, [2.25, 4.5])


def test_fedavg_samples_clients_per_round_from_the_policy_stream():
    n, m, rounds = 5, 2, 12
    prob = HeteroQuadratic(np.random.default_rng(2).normal(size=(n, 3)))
    pool = SimulatedPool(
        FixedTimes(tuple(1.0 + i for i in range(n))), local_sgd_task(prob, 1, 0.1), 0
    )
    res = run(
        FedAvg(scale(1.0), clients_per_round=m),
        pool,
        np.zeros(3),
        stop=StopRule(max_updates=rounds),
        rng=np.random.default_rng(9),
    )
    draws = np.random.default_rng(9)
    expected = [
        sorted(draws.choice(n, size=m, replace=False).tolist()) for _ in range(rounds)
    ]
    a = res.recorder.arrival_arrays()
    got = [sorted(a["worker"][a["version"] == r].tolist()) for r in range(rounds)]
    assert got == expected
    assert len({tuple(g) for g in got}) > 1  # the rounds differ


def test_fedavg_with_one_local_step_is_minibatch_sgd():
    # Δ_i = −η_l g_i, so x + η_g mean Δ = x − η_g η_l mean g (to rounding).
    n, eta_l, eta_g = 4, 0.1, 0.5
    prob = HeteroQuadratic(np.random.default_rng(0).normal(size=(n, 3)), noise=1.0)
    timing = LogNormalTimes(tuple(1.0 + i for i in range(n)), sigma=0.5)
    stop = StopRule(max_updates=30)
    fed = run(
        FedAvg(scale(eta_g)),
        SimulatedPool(timing, local_sgd_task(prob, 1, eta_l), seed=1),
        np.full(3, 3.0),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    mb = run(
        SyncMinibatch(scale(eta_g * eta_l)),
        SimulatedPool(timing, prob.grad_task, seed=1),
        np.full(3, 3.0),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(fed.params, mb.params, rtol=1e-12, atol=1e-12)
    ra, rb = fed.recorder.arrival_arrays(), mb.recorder.arrival_arrays()
    np.testing.assert_array_equal(ra["time"], rb["time"])
    assert np.linalg.norm(fed.params - 3.0) > 1.0  # it moved


def test_fedavg_rejects_more_clients_per_round_than_clients():
    with pytest.raises(ConfigError, match="clients_per_round"):
        FedAvg(scale(1.0), clients_per_round=0)
    task = local_sgd_task(HeteroQuadratic(C2), 1, 0.5)
    with pytest.raises(ConfigError, match="exceeds the number of clients"):
        simulate(
            FedAvg(scale(1.0), clients_per_round=3),
            (1.0, 2.0),
            StopRule(max_updates=1),
            task,
        )
