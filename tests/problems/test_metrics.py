"""running_gradient_metrics: the running mean and minimum of ‖∇f‖² over the
evaluation points, beside the wrapped metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.problems import RobustRegression
from clipasync.problems.metrics import running_gradient_metrics
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import scale


def test_mean_and_minimum_by_hand() -> None:
    values = iter([4.0, 1.0, 7.0, 0.5])
    ev = running_gradient_metrics(
        lambda x: {"loss": float(x[0]), "grad_norm_sq": next(values)}
    )
    rows = [ev(np.array([float(i)])) for i in range(4)]
    assert [r["avg_grad_norm_sq"] for r in rows] == [4.0, 2.5, 4.0, 3.125]
    assert [r["min_grad_norm_sq"] for r in rows] == [4.0, 1.0, 1.0, 0.5]
    assert [r["loss"] for r in rows] == [0.0, 1.0, 2.0, 3.0]  # passed through


def test_grad_norm_is_squared_when_there_is_no_grad_norm_sq() -> None:
    ev = running_gradient_metrics(lambda x: {"grad_norm": 3.0})
    assert ev(np.zeros(1)) == {
        "grad_norm": 3.0,
        "avg_grad_norm_sq": 9.0,
        "min_grad_norm_sq": 9.0,
    }


def test_each_wrapper_counts_its_own_evaluations_and_copies_the_metrics() -> None:
    shared = {"grad_norm_sq": 2.0}
    inner = lambda x: shared  # noqa: E731
    first, second = running_gradient_metrics(inner), running_gradient_metrics(inner)
    first(np.zeros(1))
    shared["grad_norm_sq"] = 4.0
    assert first(np.zeros(1))["avg_grad_norm_sq"] == 3.0
    assert second(np.zeros(1))["avg_grad_norm_sq"] == 4.0
    assert shared == {"grad_norm_sq": 4.0}  # the inner dict is not changed


def test_a_diverged_point_makes_the_mean_infinite() -> None:
    values = iter([1.0, math.inf, 1.0])
    ev = running_gradient_metrics(lambda x: {"grad_norm_sq": next(values)})
    rows = [ev(np.zeros(1)) for _ in range(3)]
    assert rows[1]["avg_grad_norm_sq"] == rows[2]["avg_grad_norm_sq"] == math.inf
    assert rows[2]["min_grad_norm_sq"] == 1.0


def test_without_a_gradient_metric_it_says_what_it_got() -> None:
    ev = running_gradient_metrics(lambda x: {"loss": 1.0})
    with pytest.raises(ConfigError, match=r"grad_norm_sq or grad_norm; .* loss"):
        ev(np.zeros(1))


def test_in_an_engine_run_it_averages_the_recorded_evaluation_rows() -> None:
    problem = RobustRegression(num_samples=200, dim=5, seed=0)
    pool = SimulatedPool(
        FixedTimes((1.0, 2.0)),
        lambda w, x, rng: problem.stochastic_grad(x, rng, w),
        0,
    )
    result = run(
        AsyncSGD(scale(0.5)),
        pool,
        problem.initial_point(),
        stop=StopRule(max_time=30.0),
        rng=np.random.default_rng(0),
        evaluate=running_gradient_metrics(problem.evaluate),
        eval_every=1.0,
    )
    evals = result.recorder.evals
    squares = np.array([e["grad_norm_sq"] for e in evals])
    assert len(evals) == 31  # t = 0, 1, ..., 30: x_0 included
    np.testing.assert_allclose(
        [e["avg_grad_norm_sq"] for e in evals],
        np.cumsum(squares) / np.arange(1, len(evals) + 1),
        rtol=1e-12,
    )
    assert evals[-1]["min_grad_norm_sq"] == squares.min()
    assert squares[-1] < squares[0]  # SGD made progress on the nonconvex problem
