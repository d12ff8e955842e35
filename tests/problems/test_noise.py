"""Sub-Weibull and Student-t noise: tail law, zero mean, wrappers, spec errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems import LeastSquares, Problem
from clipasync.problems.noise import (
    WithStudentTNoise,
    WithSubWeibullNoise,
    sample_sub_weibull_noise,
    sub_weibull_constant,
    sub_weibull_norms,
    sub_weibull_survival,
    with_noise,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture(scope="module")
def base() -> LeastSquares:
    return LeastSquares(num_samples=50, dim=6, batch_size=5, partition=[[0, 1], [2]])


@pytest.mark.parametrize("theta", [0.5, 1.0, 2.0, 3.0])
def test_empirical_survival_matches_exp_law(
    rng: np.random.Generator, theta: float
) -> None:
    n, s = 40_000, 1.5
    r = sub_weibull_norms(rng, n, theta, s)
    for p in (0.5, 0.1, 0.01):
        t = s * (-math.log(p)) ** theta  # P(R > t) = p exactly
        assert sub_weibull_survival(t, theta, s) == pytest.approx(p)
        # Tolerance: 5 binomial standard errors of the empirical frequency.
        assert abs(np.mean(r > t) - p) <= 5 * math.sqrt(p * (1 - p) / n)


def test_second_moment_and_constant(rng: np.random.Generator) -> None:
    theta, s = 1.0, 2.0
    r = sub_weibull_norms(rng, 100_000, theta, s)
    # E R² = s² Γ(2θ + 1) = 8; Var R² = s⁴(Γ(4θ+1) − Γ(2θ+1)²) = 16 · 20.
    assert np.mean(r**2) == pytest.approx(8.0, abs=5 * math.sqrt(320 / 100_000))
    assert sub_weibull_constant(theta, s) == 4.0
    assert sub_weibull_constant(0.5, 1.0) == pytest.approx(math.sqrt(2))


def test_noise_vector_norm_and_zero_mean(rng: np.random.Generator) -> None:
    dim, theta, s, m = 5, 1.5, 1.0, 20_000
    xi = np.stack([sample_sub_weibull_noise(rng, dim, theta, s) for _ in range(m)])
    # Same draws as the norm sampler, in the documented order (normals, then E).
    rng2 = np.random.default_rng(123)
    v = sample_sub_weibull_noise(rng2, dim, theta, s)
    rng3 = np.random.default_rng(123)
    rng3.standard_normal(dim)
    assert np.linalg.norm(v) == pytest.approx(s * rng3.standard_exponential() ** theta)
    # Mean zero: per-coordinate variance is E||ξ||²/d = s²Γ(2θ+1)/d.
    se = math.sqrt(s**2 * math.gamma(2 * theta + 1) / dim / m)
    assert np.all(np.abs(xi.mean(axis=0)) <= 5 * se)


def test_wrapper_is_unbiased_and_delegates(
    base: LeastSquares, rng: np.random.Generator
) -> None:
    p = WithSubWeibullNoise(base, theta=2.0, scale=0.5)
    assert isinstance(p, Problem)
    x = rng.normal(size=p.dim)
    assert p.loss(x) == base.loss(x)
    np.testing.assert_array_equal(p.grad(x), base.grad(x))
    assert p.evaluate(x) == base.evaluate(x)
    assert p.num_shards == 2  # forwarded attribute
    assert p.sigma == pytest.approx(4 * 0.5)
    draws = np.stack([p.stochastic_grad(x, rng) for _ in range(5000)])
    tol = 5 * draws.std(axis=0) / math.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - base.grad(x)) <= tol)
    # Inner draws first, then noise, from the same rng: reproducible.
    g1 = p.stochastic_grad(x, np.random.default_rng(1), worker=1)
    g2 = p.stochastic_grad(x, np.random.default_rng(1), worker=1)
    assert np.array_equal(g1, g2)
    r = np.random.default_rng(1)
    clean = base.stochastic_grad(x, r, worker=1)
    np.testing.assert_allclose(g1 - clean, sample_sub_weibull_noise(r, 6, 2.0, 0.5))


def test_wrapper_pickles(base: LeastSquares) -> None:
    p = pickle.loads(pickle.dumps(WithStudentTNoise(base, df=3.0, scale=0.1)))
    assert p.dim == base.dim and p.num_shards == 2
    with pytest.raises(AttributeError):
        _ = p._missing


def test_noise_keeps_float32_gradients() -> None:
    class F32:
        dim, name = 3, "f32"

        def stochastic_grad(
            self, x: np.ndarray, rng: np.random.Generator, worker: int | None = None
        ) -> np.ndarray:
            return np.zeros(3, dtype=np.float32)

    p = WithSubWeibullNoise(F32(), theta=1.0, scale=1.0)  # type: ignore[arg-type]
    g = p.stochastic_grad(np.zeros(3), np.random.default_rng(0))
    assert g.dtype == np.float32


def test_student_t(base: LeastSquares, rng: np.random.Generator) -> None:
    p = WithStudentTNoise(base, df=4.0, scale=2.0)
    assert p.stochastic_grad(np.zeros(p.dim), rng).shape == (6,)
    xi = np.stack([p._noise(rng) for _ in range(20_000)])
    var = 4.0 * 4.0 / 2.0  # s² ν/(ν − 2)
    assert np.all(np.abs(xi.mean(axis=0)) <= 5 * math.sqrt(var / len(xi)))
    with pytest.warns(UserWarning, match="infinite variance"):
        WithStudentTNoise(base, df=1.5, scale=1.0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: WithStudentTNoise(b, df=1.0, scale=1.0), "df must be > 1"),
        (lambda b: WithStudentTNoise(b, df=3.0, scale=0.0), "scale"),
        (lambda b: WithSubWeibullNoise(b, theta=0.0, scale=1.0), "theta"),
        (lambda b: WithSubWeibullNoise(b, theta=1.0, scale=-1.0), "scale"),
        (lambda b: WithSubWeibullNoise(b, theta=math.inf, scale=1.0), "theta"),
        (lambda b: sample_sub_weibull_noise(np.random.default_rng(0), 0, 1, 1), "dim"),
        (lambda b: with_noise(b, {"theta": 1.0}), "kind"),
        (lambda b: with_noise(b, {"kind": "cauchy"}), "unknown noise kind 'cauchy'"),
        (
            lambda b: with_noise(b, {"kind": "sub_weibull", "thta": 1, "scale": 1}),
            "accepted arguments: theta, scale",
        ),
    ],
)
def test_bad_inputs_name_the_field(
    base: LeastSquares, call: object, field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        call(base)  # type: ignore[operator]


def test_with_noise_spec(base: LeastSquares) -> None:
    assert with_noise(base, None) is base
    p = with_noise(base, {"kind": "sub_weibull", "theta": 2, "scale": 1.0})
    assert isinstance(p, WithSubWeibullNoise) and p.theta == 2.0
    assert p.name == "least_squares+sub_weibull(theta=2,s=1)"
