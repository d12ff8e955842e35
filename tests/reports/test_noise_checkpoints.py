"""The ``sgd:K`` checkpoint of ``clipasync noise``: clipped SGD through the engine.

:func:`clipasync.reports.noise_checkpoints.sgd_iterate` runs the library's
clipped-ASGD policy with one worker (every delay 0), which is sequential SGD; on
f(x) = ½‖x‖² with exact gradients its iterates have closed forms, checked here.
"""

from __future__ import annotations

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.experiments.loading import load_config
from clipasync.experiments.noise_scale import noise_scale
from clipasync.problems import LeastSquares
from clipasync.reports.noise_checkpoints import (
    checkpoint_point,
    reference_hyper,
    sgd_iterate,
)
from tests.conftest import ROOT

X0 = np.array([3.0, 4.0])  # ‖x0‖ = 5


class Quadratic:
    """f(x) = ½‖x‖² with the exact gradient as the 'stochastic' one."""

    name = "quadratic"
    dim = 2

    def initial_point(self) -> np.ndarray:
        return X0.copy()

    def stochastic_grad(
        self, x: np.ndarray, rng: np.random.Generator, worker: int | None = None
    ) -> np.ndarray:
        return x.copy()


def test_clipped_steps_move_a_fixed_length_toward_the_minimum() -> None:
    # While ‖x‖ > c every step is γ·c·x/‖x‖, so x_K = x0 (1 − Kγc/‖x0‖): the norms
    # 5, 4.5, 4, 3.5 all exceed c = 1, and x_4 = 0.6 x0.
    rng = np.random.default_rng(0)
    x = sgd_iterate(Quadratic(), 4, rng, stepsize=0.5, max_norm=1.0)
    np.testing.assert_allclose(x, 0.6 * X0, rtol=1e-12)


def test_without_clipping_the_iterates_contract_geometrically() -> None:
    # x_{k+1} = x_k − γ x_k = (1 − γ) x_k.
    rng = np.random.default_rng(0)
    x = sgd_iterate(Quadratic(), 3, rng, stepsize=0.25, max_norm=None)
    np.testing.assert_allclose(x, 0.75**3 * X0, rtol=1e-12)
    # A level above every gradient norm clips nothing: the same iterates.
    y = sgd_iterate(Quadratic(), 3, rng, stepsize=0.25, max_norm=10.0)
    np.testing.assert_array_equal(x, y)


def test_zero_steps_is_the_initial_point() -> None:
    x = sgd_iterate(
        Quadratic(), 0, np.random.default_rng(0), stepsize=1.0, max_norm=1.0
    )
    np.testing.assert_array_equal(x, X0)


def test_gradients_are_drawn_from_the_given_stream_in_order() -> None:
    problem = LeastSquares(num_samples=60, dim=5, batch_size=4, noise_std=0.5, seed=2)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    x = sgd_iterate(problem, 25, a, stepsize=0.1, max_norm=0.5)
    # The same recursion written out, drawing from an identical stream.
    y = problem.initial_point()
    for _ in range(25):
        g = problem.stochastic_grad(y, b)
        n = float(np.linalg.norm(g))
        y = y - 0.1 * (g * (0.5 / n) if n > 0.5 else g)
    assert x is not None
    np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15)
    # Exactly 25 minibatches were drawn: both streams continue at the same point.
    assert a.random() == b.random()


def test_divergence_is_reported() -> None:
    # γ = 3 on ½‖x‖²: x_k = (−2)^k x0 overflows after about a thousand steps.
    rng = np.random.default_rng(0)
    with np.errstate(over="ignore", invalid="ignore"):
        assert sgd_iterate(Quadratic(), 2000, rng, stepsize=3.0, max_norm=None) is None
        with pytest.raises(ConfigError, match="stepsize 3 diverged"):
            checkpoint_point(Quadratic(), "sgd:2000", rng, stepsize=3.0, max_norm=None)
    # Clipped, the same stepsize moves at most γc per step and stays finite.
    x = sgd_iterate(Quadratic(), 2000, rng, stepsize=3.0, max_norm=1.0)
    assert x is not None and np.linalg.norm(x) <= 5.0


@pytest.mark.parametrize("spec", ["sgd:-1", "sgd:x", "final"])
def test_bad_checkpoint_specs_raise(spec: str) -> None:
    with pytest.raises(ConfigError, match="checkpoint"):
        checkpoint_point(
            Quadratic(), spec, np.random.default_rng(0), stepsize=0.1, max_norm=None
        )


def test_reference_point_of_a_relative_grid_is_resolved() -> None:
    """The demo's clipped grid is in effective step γ·c ∈ {0.025, 0.05, 0.1} and c at
    the 10 % / 50 % noise-norm quantiles: the smallest resolved stepsize is
    0.025 / c(50 %) and the smallest clip level c(10 %)."""
    cfg = load_config(ROOT / "experiments" / "stragglers.yaml")
    scale = noise_scale(cfg.problem.model_dump(mode="json", exclude_none=True))
    c10, c50 = scale(0.1), scale(0.5)
    stepsize, max_norm = reference_hyper(cfg)
    assert max_norm == pytest.approx(c10, rel=1e-12)
    assert stepsize == pytest.approx(0.025 / c50, rel=1e-12)
