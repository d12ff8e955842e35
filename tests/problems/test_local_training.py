"""Local training as a job (clipasync.problems.local_training): hand values, client
clipping of the delta, and a non-finite delta reaching the server.

Clients are heterogeneous quadratics f_i(x) = ½‖x − c_i‖² (client i's optimum is
c_i), with optional Gaussian oracle noise, so every expected value is easy to write.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.fedbuff import FedBuff
from clipasync.problems.local_training import local_sgd_task
from clipasync.sim import (
    SimulatedPool,
)
from clipasync.timing import FixedTimes
from clipasync.transforms import scale
from tests.conftest import (
    HeteroQuadratic,
    centers,
)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: local_sgd_task(HeteroQuadratic(centers(2)), 0, 0.1), "local_steps"),
        (lambda: local_sgd_task(HeteroQuadratic(centers(2)), 1, 0.0), "local_stepsize"),
        (lambda: local_sgd_task(HeteroQuadratic(centers(2)), 1, 0.1, 0.0), "max_norm"),
    ],
)
def test_bad_local_training_parameters_raise(build: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


def test_local_sgd_task_hand_values_and_no_mutation() -> None:
    prob = HeteroQuadratic(np.array([[4.0, 0.0], [0.0, 2.0]]))
    x = np.array([0.0, 0.0])
    task = local_sgd_task(prob, local_steps=2, local_stepsize=0.5)
    # y1 = 0 − ½(0 − 4) = 2, y2 = 2 − ½(2 − 4) = 3 → Δ = (3, 0).
    np.testing.assert_array_equal(task(0, x, np.random.default_rng(0)), [3.0, 0.0])
    model = local_sgd_task(prob, 2, 0.5, output="model")
    # y1 = 1 − ½(1 − (0, 2)) = (0.5, 1.5), y2 = (0.25, 1.75), returned as x_v + Δ.
    np.testing.assert_array_equal(
        model(1, x + 1.0, np.random.default_rng(0)), [0.25, 1.75]
    )
    np.testing.assert_array_equal(x, [0.0, 0.0])


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 10.0])
def test_client_clipping_bounds_the_delta(max_norm: float) -> None:
    prob = HeteroQuadratic(centers(4), noise=2.0)
    task = local_sgd_task(prob, 5, 0.3, client_max_norm=max_norm)
    free = local_sgd_task(prob, 5, 0.3)
    x = np.ones(3)
    for w in range(4):
        d = task(w, x, np.random.default_rng(w))
        d_free = free(w, x, np.random.default_rng(w))
        assert np.linalg.norm(d) <= max_norm * (1 + 1e-12)
        if np.linalg.norm(d_free) <= max_norm:
            np.testing.assert_array_equal(d, d_free)
        else:  # same direction, norm exactly c
            np.testing.assert_allclose(d, d_free * max_norm / np.linalg.norm(d_free))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nonfinite_delta_passes_through_and_is_skipped() -> None:
    prob = HeteroQuadratic(np.array([[np.inf, 0.0]]))
    task = local_sgd_task(prob, 2, 0.1, client_max_norm=1.0)
    assert not np.all(np.isfinite(task(0, np.zeros(2), np.random.default_rng(0))))
    policy = FedBuff(1, scale(1.0))
    pool = SimulatedPool(FixedTimes((1.0,)), task, seed=0)
    res = run(
        policy,
        pool,
        np.zeros(2),
        stop=StopRule(max_arrivals=3),
        rng=np.random.default_rng(0),
    )
    assert res.counts["skipped"] == 3 and res.version == 0
    np.testing.assert_array_equal(res.params, [0.0, 0.0])
