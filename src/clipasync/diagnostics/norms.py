"""Sample the gradient-noise norms ‖g_i − ∇f(x)‖ of a problem at a point.

These are the samples whose tail Erickson & Johansson (2026, Assumption 3.2)
assume sub-Weibull(θ, σ); :mod:`clipasync.diagnostics.tails` estimates θ from them.
Pure: randomness only through a ``numpy.random.Generator``.

References:
    Erickson, Johansson. "Clipping makes distributed and federated asynchronous SGD
    robust to stragglers." arXiv:2606.13287, 2026.
"""

from __future__ import annotations

import math

import numpy as np

from clipasync.diagnostics.samples import FloatArray
from clipasync.errors import ConfigError
from clipasync.problems.base import Problem
from clipasync.types import Vector


def noise_norms(
    problem: Problem,
    x: Vector,
    rng: np.random.Generator,
    num_samples: int,
    reference_grad: Vector | None = None,
) -> FloatArray:
    """Sample ‖g_i − ∇f(x)‖ for ``num_samples`` stochastic gradients g_i at x.

    Args:
        problem: The objective; ``problem.stochastic_grad(x, rng)`` draws g_i.
        x: Point at which the noise is measured (not modified).
        rng: Source of the stochastic gradients.
        num_samples: Number of stochastic gradients (>= 1).
        reference_grad: Gradient to subtract instead of ``problem.grad(x)``; for
            PyTorch models, where the full gradient is too costly, a large-batch
            average. Its noise then adds to every norm, so use a batch much larger
            than the one of ``stochastic_grad``.

    Returns:
        Float64 array of the ``num_samples`` noise norms.

    Raises:
        ConfigError: If ``num_samples`` < 1 or ``reference_grad`` has the wrong
            shape.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise ConfigError(f"num_samples must be an integer, got {num_samples!r}")
    if num_samples < 1:
        raise ConfigError(f"num_samples must be positive, got {num_samples}")
    ref = problem.grad(x) if reference_grad is None else reference_grad
    ref = np.asarray(ref, dtype=np.float64)
    if ref.shape != np.shape(x):
        raise ConfigError(
            f"reference_grad must have the shape of x {np.shape(x)}, got {ref.shape}"
        )
    out = np.empty(num_samples, dtype=np.float64)
    for j in range(num_samples):
        diff = np.asarray(problem.stochastic_grad(x, rng), dtype=np.float64) - ref
        out[j] = math.sqrt(float(diff @ diff))
    return out
