"""Picky SGD against hand-computed trajectories.

f(x) = ½x₁² + x₂² (∇f = (x₁, 2x₂)), x₀ = (1, 1), γ = ½, workers at fixed times
(1, 2, 3), ties by start order (as in tests/policies/test_policies.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError, HyperparameterError
from clipasync.policies.params import PickyParams
from clipasync.policies.picky import PickySGD
from clipasync.policies.registry import label, lookup
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import scale
from tests.conftest import diag_quadratic_grad


def _run(threshold: float, updates: int):
    pool = SimulatedPool(FixedTimes((1.0, 2.0, 3.0)), diag_quadratic_grad, seed=0)
    return run(
        PickySGD(scale(0.5), threshold=threshold),
        pool,
        np.ones(2),
        stop=StopRule(max_updates=updates),
        rng=np.random.default_rng(0),
    )


def test_picky_hand_trajectory_loose_threshold():
    # θ = 1.2. t=1 w0@x0, moved 0: x1 = (0.5, 0). t=2 w1@x0 (started first): moved
    # ‖x1 − x0‖ = √1.25 ≈ 1.118 ≤ 1.2: x2 = x1 − ½(1, 2) = (0, −1). t=2 w0@x1: moved
    # ‖x2 − x1‖ = √1.25: x3 = x2 − ½(0.5, 0) = (−0.25, −1). t=3 w2@x0: moved
    # ‖x3 − x0‖ = √(1.5625 + 4) ≈ 2.36 > 1.2: discarded, w2 restarts at x3.
    # t=3 w0@x3: moved 0: x4 = x3 − ½(−0.25, −2) = (−0.125, 0).
    res = _run(1.2, 4)
    np.testing.assert_array_equal(res.params, [-0.125, 0.0])
    a = res.recorder.arrival_arrays()
    assert a["worker"].tolist() == [0, 1, 0, 2, 0]
    assert a["applied"].tolist() == [True, True, True, False, True]
    s = math.sqrt(1.25)
    np.testing.assert_allclose(a["moved"], [0.0, s, s, math.sqrt(5.5625), 0.0])


def test_picky_hand_trajectory_tight_threshold():
    # θ = 1. t=1 w0@x0: x1 = (0.5, 0). t=2 w1@x0: moved √1.25 > 1, discarded, w1
    # restarts at x1. t=2 w0@x1: moved 0: x2 = (0.25, 0). t=3 w2@x0: moved
    # ‖(−0.75, −1)‖ = 1.25 > 1, discarded. t=3 w0@x2: x3 = (0.125, 0).
    res = _run(1.0, 3)
    np.testing.assert_array_equal(res.params, [0.125, 0.0])
    a = res.recorder.arrival_arrays()
    assert a["applied"].tolist() == [True, False, True, False, True]
    assert res.counts["discarded"] == 2


def test_infinite_threshold_is_vanilla_asgd():
    # The vanilla hand trajectory of test_policies: x5 = (−0.625, −1).
    res = _run(math.inf, 5)
    np.testing.assert_array_equal(res.params, [-0.625, -1.0])


def test_picky_registry_entry_and_bad_input():
    entry = lookup("picky_sgd")
    assert entry.axes == ("stepsize", "max_norm", "threshold")
    p = PickyParams(stepsize=0.5, threshold=0.2)
    assert label("picky_sgd", entry.to_hyper(p)) == "γ=0.5, θ=0.2"
    assert entry.build(p).to_config() == {"policy": "PickySGD", "threshold": 0.2}
    with pytest.raises(HyperparameterError, match="threshold"):
        PickyParams(stepsize=0.5, threshold=0.0)
    with pytest.raises(ConfigError, match="threshold must be > 0"):
        PickySGD(scale(0.5), threshold=-1.0)
