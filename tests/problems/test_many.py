"""Batched oracles (:mod:`clipasync.problems.many`): row k of a batched gradient is
the one-configuration gradient at row k's iterate from the same draw (up to the
rounding of the batched products), and the stream ends where one call leaves it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems import LeastSquares
from clipasync.problems.local_training import local_sgd_task
from clipasync.problems.logistic import LogisticRegression
from clipasync.problems.many import clip_rows, evaluate_rows, local_sgd_many, many_grad
from clipasync.problems.noise import with_noise
from clipasync.problems.robust_regression import RobustRegression

SHARDS = [np.arange(w, 60, 3) for w in range(3)]


def _problems() -> list[tuple[str, Any]]:
    ls = LeastSquares(num_samples=60, dim=5, batch_size=8, seed=1, partition=SHARDS)
    return [
        ("least_squares", ls),
        ("logistic", LogisticRegression("wine", l2=0.01, batch_size=16)),
        ("noisy", with_noise(ls, {"kind": "sub_weibull", "theta": 2.0, "scale": 1.0})),
        ("fallback", RobustRegression(num_samples=50, dim=4, batch_size=5, seed=1)),
    ]


@pytest.mark.parametrize(("name", "problem"), _problems(), ids=lambda v: str(v)[:14])
def test_rows_are_the_one_configuration_gradients_of_one_draw(
    name: str, problem: Any
) -> None:
    xs = np.random.default_rng(0).normal(size=(4, problem.dim))
    worker = 1 if name != "logistic" else None
    rng = np.random.default_rng(7)
    gs = many_grad(problem)(xs, rng, worker)
    assert gs.shape == xs.shape
    for k in range(4):
        one = np.random.default_rng(7)
        g = problem.stochastic_grad(xs[k], one, worker)
        np.testing.assert_allclose(gs[k], g, rtol=1e-13, atol=1e-13 * np.abs(g).max())
        assert one.bit_generator.state == rng.bit_generator.state
    # Different iterates give different gradients (the rows are not one copy).
    assert not np.allclose(gs[0], gs[1])


def test_the_fallback_gives_exactly_the_per_row_gradients() -> None:
    problem = RobustRegression(num_samples=50, dim=4, batch_size=5, seed=1)
    xs = np.random.default_rng(0).normal(size=(3, 4))
    gs = many_grad(problem)(xs, np.random.default_rng(2), None)
    for k in range(3):
        g = problem.stochastic_grad(xs[k], np.random.default_rng(2))
        np.testing.assert_array_equal(gs[k], g)


def test_clip_rows_clips_each_row_to_its_own_level() -> None:
    rows = np.array([[3.0, 4.0], [0.3, 0.4], [3.0, 4.0], [np.inf, 0.0]])
    out = clip_rows(rows, np.array([1.0, 1.0, np.inf, 1.0]))
    np.testing.assert_allclose(out[:3], [[0.6, 0.8], [0.3, 0.4], [3.0, 4.0]])
    assert out[3, 0] == np.inf  # non-finite rows pass through for the policy


@pytest.mark.parametrize("output", ["delta", "model"])
def test_local_sgd_rows_are_each_clients_own_job(output: str) -> None:
    problem = LeastSquares(
        num_samples=60, dim=5, batch_size=8, seed=1, partition=SHARDS
    )
    etas, clips = [0.05, 0.2, 0.5], [None, 0.1, 1.0]
    task = local_sgd_many(problem, 3, etas, clips, output=output)  # type: ignore[arg-type]
    xs = np.random.default_rng(0).normal(size=(3, 5))
    cols = np.array([2, 0], dtype=np.intp)  # rows for configurations 2 and 0
    rng = np.random.default_rng(4)
    out = task(1, xs[cols], cols, rng)
    for i, j in enumerate(cols):
        one = np.random.default_rng(4)
        alone = local_sgd_task(problem, 3, etas[j], clips[j], output=output)  # type: ignore[arg-type]
        np.testing.assert_allclose(out[i], alone(1, xs[j], one), rtol=1e-12)
        assert one.bit_generator.state == rng.bit_generator.state


def test_local_sgd_many_rejects_bad_settings() -> None:
    problem = LeastSquares(num_samples=20, dim=2, batch_size=2)
    with pytest.raises(ConfigError, match="local_steps"):
        local_sgd_many(problem, 0, [0.1], [None])
    with pytest.raises(ConfigError, match="local_stepsize"):
        local_sgd_many(problem, 1, [0.0], [None])
    with pytest.raises(ConfigError, match="client_max_norm"):
        local_sgd_many(problem, 1, [0.1], [-1.0])
    with pytest.raises(ConfigError, match="2 local stepsizes"):
        local_sgd_many(problem, 1, [0.1, 0.2], [None])


def _torch_problem(dropout: bool) -> Any:
    torch = pytest.importorskip("torch")
    from clipasync.problems import TorchProblem

    torch.manual_seed(0)
    layers = [torch.nn.Linear(3, 4), torch.nn.Tanh()]
    if dropout:
        layers.append(torch.nn.Dropout(0.5))
    model = torch.nn.Sequential(*layers, torch.nn.Linear(4, 1))
    gen = torch.Generator().manual_seed(1)
    data = (torch.randn(24, 3, generator=gen), torch.randn(24, 1, generator=gen))
    return TorchProblem(model, torch.nn.MSELoss(), data, batch_size=6)


@pytest.mark.parametrize("dropout", [False, True], ids=["vmap", "replay"])
def test_a_torch_model_batches_through_torch_func_else_replays(dropout: bool) -> None:
    problem = _torch_problem(dropout)
    from clipasync.problems.torch_many import VMAP_MIN_ROWS

    xs = problem.initial_point() + np.random.default_rng(0).normal(
        size=(VMAP_MIN_ROWS, problem.dim)
    ).astype(np.float32)
    rng = np.random.default_rng(5)
    gs = many_grad(problem)(xs, rng, None)
    assert gs.dtype == np.float32 and gs.shape == xs.shape
    for k in range(VMAP_MIN_ROWS):
        one = np.random.default_rng(5)
        g = problem.stochastic_grad(xs[k], one)
        if dropout:  # random layers: one stochastic_grad per row, bit for bit
            np.testing.assert_array_equal(gs[k], g)
        else:
            np.testing.assert_allclose(gs[k], g, rtol=1e-5, atol=1e-6)
        assert one.bit_generator.state == rng.bit_generator.state
    assert getattr(problem, "_vmap_fails", False) is dropout


def test_evaluate_rows_is_evaluate_of_every_row() -> None:
    ls = LeastSquares(num_samples=60, dim=5, batch_size=8, seed=1)
    noisy = with_noise(ls, {"kind": "student_t", "df": 3.0, "scale": 1.0})
    xs = np.random.default_rng(0).normal(size=(3, 5))
    xs[2] = ls.x_star  # suboptimality 0 (clamped at 0 like evaluate)
    for problem in (ls, noisy, RobustRegression(num_samples=50, dim=5, seed=1)):
        rows = evaluate_rows(problem, xs)
        for x, got in zip(xs, rows, strict=True):
            want = problem.evaluate(x)
            assert got.keys() == want.keys()
            for key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15)
