"""TorchProblem and mnist1d_mlp: flat-vector gradients, determinism, shards."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from clipasync.errors import ConfigError
from clipasync.problems import Problem, TorchProblem, mnist1d_mlp


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(2024)


def _regression(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def _classification(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


def _seeded(module_factory: Callable[..., nn.Module], *args: object) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return module_factory(*args)


@pytest.fixture
def linear() -> TorchProblem:
    return TorchProblem(
        _seeded(nn.Linear, 3, 1), nn.MSELoss(), _regression(), batch_size=4
    )


def test_flat_layout_and_initial_point(linear: TorchProblem) -> None:
    assert isinstance(linear, Problem)
    assert linear.dim == 4 and linear.name == "torch_Linear"
    x0 = linear.initial_point()
    assert x0.dtype == np.float32 and x0.shape == (4,)
    params = dict(linear.model.named_parameters())
    w, b = params["weight"].detach().numpy(), params["bias"].detach().numpy()
    np.testing.assert_array_equal(x0, np.concatenate([w.ravel(), b]))


def test_quadratic_loss_matches_closed_form(linear: TorchProblem) -> None:
    # MSE is quadratic in (w, b): f = mean((Xw + b − y)²), ∇f = 2 [X 1]ᵀ r / N.
    xs, ys = (t.double().numpy() for t in _regression())
    x = np.array([0.3, -0.2, 0.1, 0.05], dtype=np.float32)
    design = np.hstack([xs, np.ones((len(xs), 1))])
    r = design @ x.astype(np.float64) - ys[:, 0]
    assert linear.loss(x) == pytest.approx(np.mean(r**2), rel=1e-5)
    np.testing.assert_allclose(
        linear.grad(x), 2 * design.T @ r / len(xs), rtol=1e-5, atol=1e-6
    )


def test_grad_matches_finite_differences_on_small_mlp(
    rng: np.random.Generator,
) -> None:
    model = _seeded(nn.Sequential, nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    p = TorchProblem(model, nn.CrossEntropyLoss(), _classification(), batch_size=8)
    x = p.initial_point()
    g = p.grad(x)
    eps = 1e-2  # float32 model: a large step keeps round-off below 1e-4
    for i in rng.choice(p.dim, size=8, replace=False):
        e = np.zeros(p.dim, dtype=np.float32)
        e[i] = eps
        fd = (p.loss(x + e) - p.loss(x - e)) / (2 * eps)
        assert g[i] == pytest.approx(fd, abs=2e-4, rel=2e-2)


def test_full_pass_chunking_does_not_change_results(rng: np.random.Generator) -> None:
    data = _classification()
    model = _seeded(nn.Linear, 4, 3)
    one = TorchProblem(model, nn.CrossEntropyLoss(), data, eval_batch_size=1000)
    many = TorchProblem(model, nn.CrossEntropyLoss(), data, eval_batch_size=7)
    x = one.initial_point() + rng.normal(size=one.dim).astype(np.float32)
    assert one.loss(x) == pytest.approx(many.loss(x), rel=1e-5)
    np.testing.assert_allclose(one.grad(x), many.grad(x), rtol=1e-4, atol=1e-6)


def test_stochastic_grad_is_unbiased(
    linear: TorchProblem, rng: np.random.Generator
) -> None:
    x = linear.initial_point()
    draws = np.stack([linear.stochastic_grad(x, rng) for _ in range(1500)])
    assert draws.dtype == np.float32
    tol = 5 * draws.std(axis=0) / np.sqrt(len(draws)) + 1e-5
    assert np.all(np.abs(draws.mean(axis=0) - linear.grad(x)) <= tol)


def test_dropout_gradient_is_bit_identical_for_the_same_rng() -> None:
    model = _seeded(
        nn.Sequential, nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)
    )
    p = TorchProblem(model, nn.CrossEntropyLoss(), _classification(), batch_size=40)
    x = p.initial_point()
    before = torch.get_rng_state()
    g1 = p.stochastic_grad(x, np.random.default_rng(5))
    g2 = p.stochastic_grad(x, np.random.default_rng(5))
    assert np.array_equal(g1, g2)
    # Global torch randomness is left untouched (fork_rng).
    assert torch.equal(before, torch.get_rng_state())
    # Different rng -> different dropout masks, even for the same minibatch.
    seed_a, seed_b = np.random.default_rng(5), np.random.default_rng(6)
    assert not np.array_equal(g1, p.stochastic_grad(x, seed_b))
    assert np.array_equal(g1, p.stochastic_grad(x, seed_a))
    # Eval-mode oracles ignore dropout: deterministic without any rng.
    assert np.array_equal(p.grad(x), p.grad(x))


def test_input_conversions(linear: TorchProblem, rng: np.random.Generator) -> None:
    x = linear.initial_point()
    ro = x.copy()
    ro.flags.writeable = False
    g = linear.stochastic_grad(ro, np.random.default_rng(1))
    g64 = linear.stochastic_grad(x.astype(np.float64), np.random.default_rng(1))
    assert np.array_equal(g, g64)
    with pytest.raises(ConfigError, match="x must have shape"):
        linear.loss(np.zeros(5, dtype=np.float32))


def test_shards(rng: np.random.Generator) -> None:
    xs, ys = _regression()
    model = _seeded(nn.Linear, 3, 1)
    p = TorchProblem(
        model, nn.MSELoss(), (xs, ys), batch_size=3, partition=[[0], [1, 2, 3]]
    )
    assert p.num_shards == 2
    x = p.initial_point()
    w, b = x[:3], x[3]
    r = float(xs[0].numpy() @ w + b - ys[0, 0])
    expected = 2 * r * np.append(xs[0].numpy(), 1.0)
    for _ in range(3):
        np.testing.assert_allclose(p.stochastic_grad(x, rng, worker=0), expected)
    with pytest.raises(ConfigError, match="worker"):
        p.stochastic_grad(x, rng, worker=5)


def test_evaluate_accuracy_and_perplexity() -> None:
    data = _classification()
    p = TorchProblem(
        _seeded(nn.Linear, 4, 3),
        nn.CrossEntropyLoss(),
        data,
        test_data=data,
        metrics=("accuracy", "perplexity"),
        eval_subset=10_000,  # capped at N: the subset is the whole train set
    )
    m = p.evaluate(p.initial_point())
    keys = {"loss", "grad_norm", "accuracy", "perplexity"}
    assert set(m) == keys | {"test_loss", "test_accuracy", "test_perplexity"}
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
    assert m["loss"] == pytest.approx(m["test_loss"])
    assert m["accuracy"] == pytest.approx(m["test_accuracy"])
    assert m["grad_norm"] == pytest.approx(np.linalg.norm(p.grad(p.initial_point())))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 25}, "batch_size"),
        ({"metrics": ("f1",)}, "metrics"),
        ({"metrics": "accuracy"}, "metrics"),
        ({"device": "tpu"}, "device"),
        ({"eval_subset": 0}, "eval_subset"),
        ({"partition": [[24]]}, "partition"),
        ({"train_data": (torch.zeros(3, 3), torch.zeros(2, 1))}, "train_data"),
        ({"model": nn.Linear(3, 1).double()}, "float32"),
    ],
)
def test_bad_inputs_name_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "model": nn.Linear(3, 1),
        "loss_fn": nn.MSELoss(),
        "train_data": _regression(),
        "batch_size": 4,
    }
    with pytest.raises(ConfigError, match=field):
        TorchProblem(**{**base, **kwargs})  # type: ignore[arg-type]


def test_mnist1d_mlp_small() -> None:
    # Generating MNIST-1D reseeds numpy's and Python's global generators inside
    # the mnist1d package; the wrapper must restore them (we only read the state).
    np_before = np.random.get_state(legacy=False)["state"]["key"].copy()
    py_before = random.getstate()
    p = mnist1d_mlp(num_samples=210, batch_size=16, hidden=16, seed=3)
    np_after = np.random.get_state(legacy=False)["state"]["key"]
    assert np.array_equal(np_before, np_after)
    assert py_before == random.getstate()
    assert p.dim == (40 * 16 + 16) + (16 * 16 + 16) + (16 * 10 + 10)
    assert p.num_samples == 168  # 80 % of 210
    x = p.initial_point()
    g1 = p.stochastic_grad(x, np.random.default_rng(0))
    g2 = p.stochastic_grad(x, np.random.default_rng(0))
    assert g1.dtype == np.float32 and np.array_equal(g1, g2)
    again = mnist1d_mlp(num_samples=210, batch_size=16, hidden=16, seed=3)
    assert np.array_equal(again.initial_point(), x)
    m = p.evaluate(x)
    assert {"accuracy", "test_accuracy"} <= set(m)
    assert m["loss"] == pytest.approx(math.log(10), rel=0.2)


def test_mnist1d_mlp_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="hidden"):
        mnist1d_mlp(hidden=0)
    with pytest.raises(ConfigError, match="num_samples"):
        mnist1d_mlp(num_samples=5)
