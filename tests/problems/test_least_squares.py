"""LeastSquares: hand-computed values, finite differences, unbiasedness, shards."""

from __future__ import annotations

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems import LeastSquares, Problem


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def small() -> LeastSquares:
    return LeastSquares(num_samples=60, dim=7, batch_size=8, noise_std=0.5, seed=3)


def test_two_by_two_by_hand() -> None:
    # Prepare: A = diag(1, 2), b = (1, 2), so x* = (1, 1) and f* = 0.
    p = LeastSquares.from_arrays([[1.0, 0.0], [0.0, 2.0]], [1.0, 2.0])
    x0 = p.initial_point()
    # Assert: f(0) = (1/4)(1 + 4); ∇f(0) = Aᵀ(−b)/2 = (−1/2, −2).
    assert p.loss(x0) == pytest.approx(1.25)
    np.testing.assert_allclose(p.grad(x0), [-0.5, -2.0])
    np.testing.assert_allclose(p.x_star, [1.0, 1.0])
    assert p.f_star == pytest.approx(0.0, abs=1e-24)
    assert p.evaluate(x0) == pytest.approx(
        {"loss": 1.25, "grad_norm": np.hypot(0.5, 2.0), "suboptimality": 1.25}
    )
    # Single-row gradients: row 0 -> (0 − 1)·(1, 0); row 1 -> (0 − 2)·(0, 2).
    seen = {tuple(p.stochastic_grad(x0, np.random.default_rng(s))) for s in range(20)}
    assert seen == {(-1.0, 0.0), (0.0, -4.0)}


def test_is_a_problem(small: LeastSquares) -> None:
    assert isinstance(small, Problem)
    assert small.dim == 7 and small.name == "least_squares"
    x0 = small.initial_point()
    x0 += 1.0  # a fresh array each call: mutating it changes nothing
    np.testing.assert_array_equal(small.initial_point(), np.zeros(7))


def test_grad_matches_finite_differences(
    small: LeastSquares, rng: np.random.Generator
) -> None:
    x = rng.normal(size=small.dim)
    eps = 1e-6
    fd = [
        (small.loss(x + eps * e) - small.loss(x - eps * e)) / (2 * eps)
        for e in np.eye(small.dim)
    ]
    np.testing.assert_allclose(small.grad(x), fd, rtol=1e-6, atol=1e-8)


def test_suboptimality_is_loss_minus_fstar(
    small: LeastSquares, rng: np.random.Generator
) -> None:
    x = rng.normal(size=small.dim)
    assert small.suboptimality(x) == pytest.approx(small.loss(x) - small.f_star)
    assert small.suboptimality(small.x_star) < 1e-20
    np.testing.assert_allclose(small.grad(small.x_star), 0.0, atol=1e-10)


@pytest.mark.parametrize("replace", [True, False])
def test_stochastic_grad_is_unbiased(
    small: LeastSquares, rng: np.random.Generator, replace: bool
) -> None:
    p = LeastSquares(num_samples=60, dim=7, batch_size=8, seed=3, replace=replace)
    x = rng.normal(size=p.dim)
    draws = np.stack([p.stochastic_grad(x, rng) for _ in range(4000)])
    # 5 standard errors per coordinate (estimated from the draws themselves).
    tol = 5 * draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - p.grad(x)) <= tol)


def test_full_batch_without_replacement_is_exact(rng: np.random.Generator) -> None:
    p = LeastSquares(num_samples=30, dim=4, batch_size=30, replace=False)
    x = rng.normal(size=4)
    np.testing.assert_allclose(p.stochastic_grad(x, rng), p.grad(x), rtol=1e-10)


def test_same_seed_gives_bit_identical_gradient(small: LeastSquares) -> None:
    x = np.linspace(-1, 1, small.dim)
    g1 = small.stochastic_grad(x, np.random.default_rng(7))
    g2 = small.stochastic_grad(x, np.random.default_rng(7))
    g3 = small.stochastic_grad(x, np.random.default_rng(8))
    assert np.array_equal(g1, g2)
    assert not np.array_equal(g1, g3)


def test_same_seed_same_design() -> None:
    a = LeastSquares(num_samples=20, dim=3, batch_size=2, seed=5)
    b = LeastSquares(num_samples=20, dim=3, batch_size=2, seed=5)
    assert np.array_equal(a.a, b.a) and np.array_equal(a.b, b.b)
    assert not a.a.flags.writeable


def test_shard_sampling_respects_partition(rng: np.random.Generator) -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    b = np.array([1.0, 2.0, 3.0, 4.0])
    shards = [np.array([0, 1]), np.array([2, 3])]
    p = LeastSquares.from_arrays(a, b, batch_size=2, replace=False, partition=shards)
    assert p.num_shards == 2
    x = rng.normal(size=2)
    for w, rows in enumerate(shards):
        expected = a[rows].T @ (a[rows] @ x - b[rows]) / 2
        np.testing.assert_allclose(p.stochastic_grad(x, rng, worker=w), expected)
    # With replacement, every single-row draw of worker 1 comes from rows 2, 3.
    q = LeastSquares.from_arrays(a, b, batch_size=1, partition=shards)
    allowed = {tuple(a[i] * (a[i] @ x - b[i])) for i in (2, 3)}
    for _ in range(30):
        assert tuple(q.stochastic_grad(x, rng, worker=1)) in allowed
    # loss/grad stay global.
    assert q.loss(x) == pytest.approx(float(np.mean((a @ x - b) ** 2)) / 2)


def test_bad_worker_raises(rng: np.random.Generator) -> None:
    p = LeastSquares(num_samples=10, dim=2, batch_size=2, partition=[[0, 1], [2]])
    with pytest.raises(ConfigError, match=r"worker must be in \[0, 2\)"):
        p.stochastic_grad(np.zeros(2), rng, worker=2)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -3}, "batch_size"),
        ({"batch_size": 11}, "batch_size"),
        ({"num_samples": 0}, "num_samples"),
        ({"dim": 2.5}, "dim"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"partition": [[0, 10]]}, "partition"),
        ({"partition": [[]]}, "partition"),
        ({"partition": []}, "partition"),
    ],
)
def test_bad_inputs_name_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"num_samples": 10, "dim": 2, "batch_size": 2}
    with pytest.raises(ConfigError, match=field):
        LeastSquares(**{**base, **kwargs})  # type: ignore[arg-type]


def test_default_is_the_mishchenko_setup() -> None:
    p = LeastSquares()
    assert (p.num_samples, p.dim, p.batch_size) == (10_000, 400, 256)
    g = p.stochastic_grad(p.initial_point(), np.random.default_rng(0))
    assert g.shape == (400,) and g.dtype == np.float64
