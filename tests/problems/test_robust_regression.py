"""RobustRegression: hand-computed losses of the three ρ, exact gradients, unbiased
minibatches, nonconvexity, the smoothness bound, shards, noise and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems import PROBLEMS, RobustRegression, make_problem
from clipasync.problems.noise import WithSubWeibullNoise

RHOS = ("geman_mcclure", "cauchy", "welsch")


def _rho_by_hand(rho: str, r: float, delta: float) -> float:
    d2 = delta * delta
    if rho == "geman_mcclure":
        return 0.5 * d2 * r * r / (d2 + r * r)
    if rho == "cauchy":
        return 0.5 * d2 * math.log(1.0 + r * r / d2)
    return 0.5 * d2 * (1.0 - math.exp(-r * r / d2))


@pytest.mark.parametrize("rho", RHOS)
def test_loss_is_the_mean_of_rho_of_the_residuals(rho: str) -> None:
    a = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    b = [0.5, -1.0, 3.0]
    p = RobustRegression.from_arrays(a, b, delta=2.0, rho=rho)
    x = [1.0, 0.5]
    residuals = (1.0 - 0.5, 1.0 + 1.0, 1.5 - 3.0)
    expected = sum(_rho_by_hand(rho, r, 2.0) for r in residuals) / 3
    assert p.loss(x) == pytest.approx(expected, rel=1e-14)
    assert p.evaluate(x)["loss"] == pytest.approx(expected, rel=1e-14)


def test_geman_mcclure_by_hand() -> None:
    # r = 0 and r = −2 with δ = 1: ρ = 0 and ½·4/5; ρ'(−2) = −2/25.
    p = RobustRegression.from_arrays([[1.0], [1.0]], [0.0, 2.0])
    assert p.loss([0.0]) == pytest.approx(0.2, rel=1e-15)
    assert p.grad([0.0]).tolist() == pytest.approx([(0.0 - 2.0 / 25.0) / 2.0])


@pytest.mark.parametrize("rho", RHOS)
def test_gradient_matches_central_differences(rho: str) -> None:
    p = RobustRegression(num_samples=300, dim=6, rho=rho, delta=0.7, seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=6)
    h = 1e-6
    numeric = np.array(
        [(p.loss(x + h * e) - p.loss(x - h * e)) / (2 * h) for e in np.eye(6)]
    )
    np.testing.assert_allclose(p.grad(x), numeric, rtol=1e-6, atol=1e-9)
    m = p.evaluate(x)
    g = p.grad(x)
    assert m["grad_norm_sq"] == pytest.approx(float(g @ g), rel=1e-12)
    assert m["grad_norm"] == pytest.approx(float(np.linalg.norm(g)), rel=1e-12)


def test_minibatch_gradient_is_unbiased_and_full_batch_is_exact() -> None:
    p = RobustRegression(num_samples=50, dim=4, batch_size=5, seed=1)
    x = np.full(4, 0.3)
    rng = np.random.default_rng(7)
    draws = np.array([p.stochastic_grad(x, rng) for _ in range(40_000)])
    se = draws.std(axis=0) / math.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - p.grad(x)) < 5 * se)
    # Without replacement and |B| = N the minibatch is the whole data set.
    whole = RobustRegression(
        num_samples=50, dim=4, batch_size=50, seed=1, replace=False
    )
    np.testing.assert_allclose(
        whole.stochastic_grad(x, np.random.default_rng(0)), whole.grad(x), rtol=1e-12
    )


def test_it_is_nonconvex_and_smooth_with_the_stated_constant() -> None:
    p = RobustRegression(num_samples=400, dim=5, seed=2)
    rng = np.random.default_rng(0)
    L = p.smoothness
    gram = p.a.T @ p.a / p.num_samples
    assert np.isclose(L, float(np.linalg.eigvalsh(gram)[-1]), rtol=1e-12)
    found_concave_pair = False
    for _ in range(300):
        x, y = rng.normal(size=5) * 3, rng.normal(size=5) * 3
        gx, gy = p.grad(x), p.grad(y)
        # L-smooth: ‖∇f(x) − ∇f(y)‖ <= L‖x − y‖.
        assert np.linalg.norm(gx - gy) <= L * np.linalg.norm(x - y) * (1 + 1e-12)
        # Convexity would need f(y) >= f(x) + ∇f(x)·(y − x) for every pair.
        if p.loss(y) < p.loss(x) + gx @ (y - x) - 1e-9:
            found_concave_pair = True
    assert found_concave_pair


def test_outliers_are_the_stated_share_and_carry_the_gross_error() -> None:
    p = RobustRegression(
        num_samples=1000, dim=4, noise_std=0.0, outlier_fraction=0.1, seed=5
    )
    assert p.outliers.size == 100
    clean = p.a @ p.x_true
    off = np.abs(p.b - clean)
    inliers = np.setdiff1d(np.arange(1000), p.outliers)
    np.testing.assert_allclose(off[inliers], 0.0, atol=1e-12)
    assert np.median(off[p.outliers]) > 3.0  # |10·N(0, 1)|: median 6.7
    # The planted model fits the inliers exactly: a small loss, not zero.
    assert 0 < p.loss(p.x_true) < 0.1 * 0.5  # at most the outliers' share of δ²/2


def test_starts_at_zero_and_is_deterministic_in_its_seed() -> None:
    p, q = RobustRegression(seed=4), RobustRegression(seed=4)
    np.testing.assert_array_equal(p.initial_point(), np.zeros(20))
    np.testing.assert_array_equal(p.b, q.b)
    assert not np.array_equal(p.b, RobustRegression(seed=5).b)
    g1 = p.stochastic_grad(p.initial_point(), np.random.default_rng(0))
    g2 = q.stochastic_grad(q.initial_point(), np.random.default_rng(0))
    np.testing.assert_array_equal(g1, g2)


def test_shards_sample_only_their_rows() -> None:
    shards = [np.arange(0, 10), np.arange(10, 20)]
    p = RobustRegression(num_samples=20, dim=3, batch_size=20, partition=shards)
    x = np.ones(3)
    rng = np.random.default_rng(0)
    assert p.num_shards == 2
    one = RobustRegression.from_arrays(p.a[10:], p.b[10:], batch_size=10)
    # Without replacement the batch is the whole shard: the shard's gradient.
    q = RobustRegression(
        num_samples=20, dim=3, batch_size=20, partition=shards, replace=False
    )
    np.testing.assert_allclose(q.stochastic_grad(x, rng, worker=1), one.grad(x))
    with pytest.raises(ConfigError, match="worker must be in"):
        p.stochastic_grad(x, rng, worker=2)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"rho": "huber"}, "unknown rho 'huber'; choose one of: geman_mcclure"),
        ({"delta": 0.0}, "delta must be positive"),
        ({"outlier_fraction": 1.5}, r"outlier_fraction must be in \[0, 1\]"),
        ({"noise_std": -1.0}, "noise_std must be a non-negative"),
        ({"num_samples": 5, "batch_size": 6}, "batch_size must be at most"),
    ],
)
def test_bad_arguments_are_one_line_config_errors(kwargs, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern):
        make_problem("robust_regression", **kwargs)


def test_registered_and_wrapped_with_noise() -> None:
    assert PROBLEMS["robust_regression"] is RobustRegression
    p = make_problem(
        "robust_regression",
        num_samples=500,
        dim=10,
        noise={"kind": "sub_weibull", "theta": 1.5, "scale": 0.1},
    )
    assert isinstance(p, WithSubWeibullNoise)
    assert set(p.evaluate(p.initial_point())) == {"loss", "grad_norm", "grad_norm_sq"}
    x = p.initial_point()
    noisy = p.stochastic_grad(x, np.random.default_rng(0))
    plain = p.problem.stochastic_grad(x, np.random.default_rng(0))
    assert noisy.shape == (10,) and not np.allclose(noisy, plain)
