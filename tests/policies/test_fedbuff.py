"""FedBuff (clipasync.policies.fedbuff): equivalences with asynchronous SGD, client
clipping, hand trajectories with staleness, server momentum, timing-only runs.

Clients are heterogeneous quadratics f_i(x) = ½‖x − c_i‖² (client i's optimum is
c_i), with optional Gaussian oracle noise, so every expected value is easy to write.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.fedbuff import FedBuff
from clipasync.policies.staleness import (
    PolynomialStaleness,
)
from clipasync.problems.local_training import local_sgd_task
from clipasync.seeding import Stream, stream
from clipasync.sim import (
    SimulatedPool,
)
from clipasync.timing import ExponentialTimes, FixedTimes, LogNormalTimes
from clipasync.transforms import chain, clip_by_norm, scale
from clipasync.transforms.momentum import momentum
from tests.conftest import (
    HeteroQuadratic,
    centers,
    const_task,
    params_after_each_update,
)


@pytest.mark.parametrize("assign", ["same", "random"])
@pytest.mark.parametrize("server_stepsize", [1.0, 0.7])
def test_fedbuff_k1_one_local_step_is_async_sgd(
    assign: Any, server_stepsize: float
) -> None:
    n, eta_l = 5, 0.05
    prob = HeteroQuadratic(centers(n), noise=1.0)
    timing = LogNormalTimes(tuple(1.0 + i for i in range(n)), sigma=1.0)
    stop = StopRule(max_updates=200)
    x0 = np.zeros(3)
    fed = run(
        FedBuff(1, scale(server_stepsize), assign=assign),
        SimulatedPool(timing, local_sgd_task(prob, 1, eta_l), seed=3),
        x0,
        stop=stop,
        rng=stream(3, Stream.POLICY),
    )
    sgd = run(
        AsyncSGD(scale(server_stepsize * eta_l), assign=assign),
        SimulatedPool(timing, prob.grad_task, seed=3),
        x0,
        stop=stop,
        rng=stream(3, Stream.POLICY),
    )
    if server_stepsize == 1.0:  # u = 1·(η_l g) = η_l g: the same floating-point ops
        np.testing.assert_array_equal(fed.params, sgd.params)
    np.testing.assert_allclose(fed.params, sgd.params, rtol=1e-12, atol=1e-12)
    a, b = fed.recorder.arrival_arrays(), sgd.recorder.arrival_arrays()
    for col in ("time", "worker", "delay", "job"):
        np.testing.assert_array_equal(a[col], b[col])
    assert np.linalg.norm(fed.params - x0) > 1.0  # it moved


def test_fedbuff_k1_with_client_clipping_is_clipped_async_sgd() -> None:
    n, eta_l, c = 4, 0.1, 0.05
    prob = HeteroQuadratic(centers(n), noise=1.0)
    timing = ExponentialTimes(tuple(1.0 + i for i in range(n)))
    stop = StopRule(max_updates=150)
    fed = run(
        FedBuff(1, scale(1.0)),
        SimulatedPool(timing, local_sgd_task(prob, 1, eta_l, client_max_norm=c), 1),
        np.zeros(3),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    # clip_c(−η_l g) = −η_l clip_{c/η_l}(g)
    sgd = run(
        AsyncSGD(chain(clip_by_norm(c / eta_l), scale(eta_l))),
        SimulatedPool(timing, prob.grad_task, 1),
        np.zeros(3),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(fed.params, sgd.params, rtol=1e-12, atol=1e-12)


def test_client_clipping_bounds_the_applied_update() -> None:
    # K = 1: ‖x_{k+1} − x_k‖ = η_g ‖Δ‖ ≤ η_g c, whatever the delay or local steps.
    eta_g, c = 0.7, 0.3
    prob = HeteroQuadratic(centers(6), noise=3.0)
    task = local_sgd_task(prob, 4, 0.4, client_max_norm=c)
    pool = SimulatedPool(ExponentialTimes((1.0,) * 3 + (8.0,) * 3), task, seed=5)
    xs = params_after_each_update(FedBuff(1, scale(eta_g)), pool, np.zeros(3), 100)
    steps = np.linalg.norm(np.diff(np.array(xs), axis=0), axis=1)
    assert steps.max() <= eta_g * c * (1 + 1e-12)
    assert steps.max() >= 0.99 * eta_g * c  # clipping was active


def test_fedbuff_hand_trajectory_with_staleness_and_cutoff() -> None:
    # Fixed times (1, 2, 5), deltas d_w that ignore x, K = 2, s = 1/(1+delay),
    # max_staleness = 1 (timeline in the comments; ties go to the earlier start).
    d = {0: np.array([1.0, 0.0]), 1: np.array([0.0, 2.0]), 2: np.array([8.0, 8.0])}
    policy = FedBuff(2, scale(1.0), staleness=PolynomialStaleness(1.0), max_staleness=1)
    pool = SimulatedPool(FixedTimes((1.0, 2.0, 5.0)), const_task(d), seed=0)
    res = run(
        policy,
        pool,
        np.zeros(2),
        stop=StopRule(max_arrivals=7),
        rng=np.random.default_rng(0),
    )
    x1 = (d[0] + d[1]) / 2  # t=1 w0 d0 (delay 0); t=2 w1 d1 (delay 0) → step
    x2 = x1 + (0.5 * d[0] + d[0]) / 2  # t=2 w0@v0 (delay 1); t=3 w0@v1 → step
    x3 = x2 + (0.5 * d[1] + d[0]) / 2  # t=4 w1@v1 (delay 1); t=4 w0@v2 → step
    # t=5: w2@v0 has delay 3 > 1: discarded.
    np.testing.assert_array_equal(res.params, x3)
    assert res.counts == {
        "arrivals": 7,
        "applied": 3,
        "discarded": 1,
        "skipped": 0,
        "cancelled": 0,
    }
    a = res.recorder.arrival_arrays()
    assert a["worker"].tolist() == [0, 1, 0, 0, 1, 0, 2]
    assert a["delay"].tolist() == [0, 0, 1, 0, 1, 0, 3]
    assert a["applied"].tolist() == [False, True, False, True, False, True, False]


def test_fedbuff_server_momentum_hand_values() -> None:
    d = {0: np.array([1.0, -1.0])}
    policy = FedBuff(1, chain(momentum(0.5), scale(2.0)))
    pool = SimulatedPool(FixedTimes((1.0,)), const_task(d), seed=0)
    xs = params_after_each_update(policy, pool, np.zeros(2), 3)
    # ĝ = −d; m = ĝ, 1.5ĝ, 1.75ĝ; x ← x − 2m, so x gains 2d, 3d, 3.5d.
    expected = np.cumsum([2.0, 3.0, 3.5])[:, None] * d[0]
    np.testing.assert_array_equal(np.array(xs[1:]), expected)


def test_fedbuff_timing_only_counts_server_steps() -> None:
    pool = SimulatedPool(FixedTimes((1.0, 1.0, 1.0)), None, seed=0)
    res = run(
        FedBuff(3, scale(1.0)),
        pool,
        np.zeros(2),
        stop=StopRule(max_updates=4),
        rng=np.random.default_rng(0),
    )
    assert res.version == 4 and res.counts["arrivals"] == 12 and res.time == 4.0


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: FedBuff(buffer_size=0, server_transform=scale(1.0)), "buffer_size"),
        (
            lambda: FedBuff(
                buffer_size=2, server_transform=scale(1.0), max_staleness=-1
            ),
            "max_staleness",
        ),
        (
            lambda: FedBuff(1, scale(1.0), assign="fastest"),  # type: ignore[arg-type]
            "assign",
        ),
    ],
)
def test_bad_fedbuff_parameters_raise(build: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()
