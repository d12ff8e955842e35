"""FedAsync (clipasync.policies.fedasync): model replacement at α = 1, its match with
FedBuff, a hand trajectory with staleness, and convergence on heterogeneous clients.

Clients are heterogeneous quadratics f_i(x) = ½‖x − c_i‖² (client i's optimum is
c_i), with optional Gaussian oracle noise, so every expected value is easy to write.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.fedasync import FedAsync
from clipasync.policies.fedbuff import FedBuff
from clipasync.policies.staleness import (
    PolynomialStaleness,
)
from clipasync.problems.local_training import local_sgd_task
from clipasync.seeding import Stream, stream
from clipasync.sim import (
    SimulatedPool,
)
from clipasync.timing import ExponentialTimes, FixedTimes
from clipasync.transforms import scale
from tests.conftest import (
    HeteroQuadratic,
    centers,
    const_task,
    params_after_each_update,
)


def test_fedasync_alpha1_single_client_replaces_the_model() -> None:
    prob = HeteroQuadratic(centers(1), noise=1.0)
    task = local_sgd_task(prob, 3, 0.1, output="model")
    pool = SimulatedPool(FixedTimes((2.0,)), task, seed=11)
    xs = params_after_each_update(FedAsync(mixing=1.0), pool, np.zeros(3), 20)
    oracle = stream(11, Stream.ORACLE, 0)
    x = np.zeros(3)
    for k in range(1, 21):
        x = task(0, x, oracle)
        np.testing.assert_array_equal(xs[k], x)


def test_fedbuff_k1_scale1_is_fedasync_alpha1_single_client() -> None:
    prob = HeteroQuadratic(centers(1), noise=1.0)
    stop = StopRule(max_updates=50)
    buff = run(
        FedBuff(1, scale(1.0)),
        SimulatedPool(ExponentialTimes((1.0,)), local_sgd_task(prob, 3, 0.2), 4),
        np.zeros(3),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    mix = run(
        FedAsync(mixing=1.0),
        SimulatedPool(
            ExponentialTimes((1.0,)), local_sgd_task(prob, 3, 0.2, output="model"), 4
        ),
        np.zeros(3),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(buff.params, mix.params, rtol=1e-12, atol=1e-12)
    assert buff.time == mix.time


def test_fedasync_hand_trajectory_with_polynomial_staleness() -> None:
    # Clients upload fixed models c_w; times (1, 1.5); α = ½, s = 1/(1+delay).
    c = {0: np.array([4.0, 0.0]), 1: np.array([0.0, 8.0])}
    policy = FedAsync(mixing=0.5, staleness=PolynomialStaleness(1.0))
    pool = SimulatedPool(FixedTimes((1.0, 1.5)), const_task(c), seed=0)
    x0 = np.array([2.0, 2.0])
    res = run(
        policy, pool, x0, stop=StopRule(max_updates=3), rng=np.random.default_rng(0)
    )
    x1 = 0.5 * x0 + 0.5 * c[0]  # t=1: w0, delay 0, α = ½
    x2 = 0.75 * x1 + 0.25 * c[1]  # t=1.5: w1@v0, delay 1, α = ¼
    x3 = 0.75 * x2 + 0.25 * c[0]  # t=2: w0@v1, delay 1, α = ¼
    np.testing.assert_array_equal(res.params, x3)
    assert res.recorder.arrival_arrays()["delay"].tolist() == [0, 1, 1]


def test_federated_policies_converge_on_heterogeneous_clients() -> None:
    # With uniform random assignment (Algorithm 2) and constant weights, the mean of
    # the client optima, which minimises f = (1/n) Σ f_i, is the fixed point; the
    # iterate fluctuates around it with spread ~ sqrt(effective stepsize).
    # (Staleness weights would bias it towards the fast clients' optima.)
    n = 8
    prob = HeteroQuadratic(centers(n, spread=1.0), noise=0.3)
    target = prob.centers.mean(axis=0)
    timing = ExponentialTimes((1.0,) * 4 + (6.0,) * 4)
    for policy, output, eta_l in [
        (FedBuff(4, scale(1.0), assign="random"), "delta", 0.005),
        (FedAsync(0.5, assign="random"), "model", 0.01),
    ]:
        task = local_sgd_task(prob, 2, eta_l, output=output)
        res = run(
            policy,
            SimulatedPool(timing, task, seed=2),
            np.zeros(3),
            stop=StopRule(max_updates=3000),
            rng=np.random.default_rng(1),
        )
        assert np.linalg.norm(res.params - target) < 0.1, policy.name


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: FedAsync(mixing=0.0), "mixing"),
        (lambda: FedAsync(mixing=1.5), "mixing"),
    ],
)
def test_bad_fedasync_parameters_raise(build: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()
