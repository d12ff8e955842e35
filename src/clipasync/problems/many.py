"""Oracles for many configurations at once: one minibatch, every configuration's
gradient (common random numbers).

A batched grid run (:mod:`clipasync.sim.batched`) keeps the iterates of K
configurations as the rows of a K × d matrix X and asks, for every job, the
stochastic gradient of each row *from the same draw*: ``g_B(x_k)`` for the one
minibatch B (and noise ξ) that the one-configuration run of any of them would draw.
For least squares that is one matrix–matrix product,

.. math:: G = \\big((A_B X^\\top - b_B \\mathbf 1^\\top)^\\top A_B\\big)/|B|,

instead of K matrix–vector products; rows agree with ``stochastic_grad`` up to the
rounding of the products (a few ulps per entry, see :mod:`clipasync.sim.batched`).

A problem opts in by a method ``stochastic_grad_many(xs, rng, worker)`` with the
random draws of one ``stochastic_grad`` call (least squares, logistic regression and
their noisy wrappers have one). :func:`many_grad` falls back to one call per row
with the stream rewound before each, which gives every row the same draw on any
problem whose draws do not depend on x (a PyTorch model, say).

The federated job (local SGD on a client's shard, arXiv 2606.13287, Algorithm 2)
batches the same way in :func:`local_sgd_many`: the Q local minibatches are drawn
once, and each row takes its own local stepsize η_l and client clip level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

#: K configurations' iterates (or gradients), one per row.
Rows = npt.NDArray[np.floating[Any]]
#: Indices of the configurations a block of rows belongs to.
Columns = npt.NDArray[np.intp]
#: ``grad(xs, rng, worker) -> gs``: the gradients of every row from one draw.
ManyGrad = Callable[[Rows, np.random.Generator, "int | None"], Rows]
#: ``task(worker, xs, columns, rng) -> payloads``: a job for several configurations;
#: ``columns[i]`` says whose iterate row i is (per-configuration client settings).
ManyTask = Callable[[int, Rows, Columns, np.random.Generator], Rows]


def many_grad(problem: Any) -> ManyGrad:
    """Return the batched stochastic gradient of ``problem``.

    ``problem.stochastic_grad_many`` when it has one, else one ``stochastic_grad``
    per row, the stream rewound to its state before the first before each: the
    rows then share one draw when the draws do not depend on x, and the stream ends
    where one call leaves it.
    """
    # Looked up on the class: a wrapper that forwards unknown attributes to the
    # problem it wraps must not lend the inner problem's batched oracle.
    if getattr(type(problem), "stochastic_grad_many", None) is not None:
        return problem.stochastic_grad_many  # type: ignore[no-any-return]

    def per_row(xs: Rows, rng: np.random.Generator, worker: int | None = None) -> Rows:
        return replay_rows(problem, xs, rng, worker)

    return per_row


def replay_rows(
    problem: Any, xs: Rows, rng: np.random.Generator, worker: int | None = None
) -> Rows:
    """Return one ``stochastic_grad`` per row of ``xs``, ``rng`` rewound to its
    starting state before each (the per-row fallback of :func:`many_grad`)."""
    start = rng.bit_generator.state
    out: Rows | None = None
    for i in range(xs.shape[0]):
        if i:
            rng.bit_generator.state = start
        g = problem.stochastic_grad(xs[i], rng, worker)
        if out is None:
            out = np.empty((xs.shape[0], g.shape[0]), dtype=g.dtype)
        out[i] = g
    if out is None:  # no rows: still consume the one draw of a job
        problem.stochastic_grad(np.zeros(problem.dim, dtype=xs.dtype), rng, worker)
        return np.empty((0, problem.dim), dtype=xs.dtype)
    return out


def evaluate_rows(problem: Any, xs: Rows) -> list[dict[str, float]]:
    """Return ``problem.evaluate`` of every row: one batched call where the problem
    has ``evaluate_many`` (least squares: one pass over the data for all rows),
    else one call per row."""
    if getattr(type(problem), "evaluate_many", None) is not None:
        return problem.evaluate_many(xs)  # type: ignore[no-any-return]
    return [problem.evaluate(x) for x in xs]


def gradient_task(problem: Any) -> ManyTask:
    """Return the batched job of a non-federated method: one stochastic gradient."""
    grad = many_grad(problem)

    def task(worker: int, xs: Rows, cols: Columns, rng: np.random.Generator) -> Rows:
        return grad(xs, rng, worker)

    return task


def row_norms(rows: Rows) -> npt.NDArray[np.float64]:
    """Return the Euclidean norm of every row (as float64)."""
    out: npt.NDArray[np.float64] = np.sqrt(
        np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    )
    return out


def clip_rows(rows: Rows, levels: npt.NDArray[np.float64]) -> Rows:
    """Return every row r_i clipped to norm ``levels[i]``: min(1, c_i/‖r_i‖)·r_i
    (arXiv 2606.13287, Algorithm 1); rows at or below their level, ``inf`` levels
    and non-finite rows are returned unchanged."""
    norms = row_norms(rows)
    over = np.isfinite(norms) & (norms > levels)
    if not over.any():
        return rows
    factor = np.ones_like(norms)
    factor[over] = levels[over] / norms[over]
    out: Rows = rows * factor[:, None].astype(rows.dtype, copy=False)
    return out


def local_sgd_many(
    problem: Any,
    local_steps: int,
    local_stepsizes: Sequence[float],
    client_max_norms: Sequence[float | None],
    *,
    output: Literal["delta", "model"] = "delta",
) -> ManyTask:
    """Return the batched local-SGD job of a federated grid (one row per config).

    Configuration j runs the job of
    :func:`~clipasync.problems.local_training.local_sgd_task` with its own η_l
    (``local_stepsizes[j]``) and clip level (``client_max_norms[j]``): Δ_j = −η_l
    Σ_q g_{B_q}(x_j + Δ_j^{(q)}), clipped, as a delta or a model. The Q minibatches
    are drawn once for all rows, so ``local_steps`` must be common to the grid.

    Raises:
        ConfigError: On a non-positive step count or stepsize, a non-positive clip
            level, mismatched lengths, or an unknown ``output``.
    """
    if not (isinstance(local_steps, int | np.integer) and local_steps >= 1):
        raise ConfigError(f"local_steps must be an integer >= 1, got {local_steps}")
    if len(local_stepsizes) != len(client_max_norms):
        raise ConfigError(
            f"{len(local_stepsizes)} local stepsizes for "
            f"{len(client_max_norms)} client clip levels"
        )
    for eta in local_stepsizes:
        if not (math.isfinite(eta) and eta > 0):
            raise ConfigError(
                f"local_stepsize must be a positive finite number, got {eta}"
            )
    for c in client_max_norms:
        if c is not None and not (c > 0):
            raise ConfigError(f"client_max_norm must be positive or None, got {c}")
    if output not in ("delta", "model"):
        raise ConfigError(f"output must be 'delta' or 'model', got {output!r}")
    grad = many_grad(problem)
    etas = np.asarray(local_stepsizes, dtype=np.float64)
    levels = np.asarray(
        [math.inf if c is None else float(c) for c in client_max_norms],
        dtype=np.float64,
    )
    steps = int(local_steps)

    def task(worker: int, xs: Rows, cols: Columns, rng: np.random.Generator) -> Rows:
        eta: Rows = etas[cols][:, None].astype(xs.dtype, copy=False)
        delta: Rows = -(eta * grad(xs, rng, worker))
        for _ in range(steps - 1):
            delta = delta - eta * grad(xs + delta, rng, worker)
        delta = clip_rows(delta, levels[cols])
        return delta if output == "delta" else xs + delta

    return task
