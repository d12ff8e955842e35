"""Estimating the smoothness L and the noise level σ of a problem at a point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipasync.diagnostics.tails import TailFit, estimate_sub_weibull_theta, noise_norms
from clipasync.problems.base import Problem
from clipasync.theory.checks import (
    _non_negative,
    _positive,
    _positive_int,
)
from clipasync.types import Vector

# ---------------------------------------------------------------------------
# estimating L and σ from a problem


def estimate_smoothness(
    problem: Problem,
    x: Vector,
    rng: np.random.Generator,
    iters: int = 50,
    *,
    step: float | None = None,
    tol: float = 1e-8,
) -> float:
    """Estimate the local smoothness ‖∇²f(x)‖₂ by power iteration.

    Hessian-vector products are central differences of the exact gradient,

    .. math:: \\nabla^2 f(x) v \\approx
        \\frac{\\nabla f(x + hv) - \\nabla f(x - hv)}{2h}, \\qquad \\lVert v\\rVert=1,

    with h = ε_mach^{1/3} max(1, ‖x‖) ≈ 6·10⁻⁶ max(1, ‖x‖) by default, which
    balances the O(h²) truncation error against the O(ε_mach/h) rounding error
    (exact up to rounding on quadratics). Power iteration from a random start
    converges to the eigenvalue of largest magnitude at rate |λ₂/λ₁| per step; the
    result is the spectral norm at x, a *lower* bound on the global L.

    Args:
        problem: The objective; only ``problem.grad`` is called (2 per iteration).
        x: Point (not modified).
        rng: Source of the starting vector.
        iters: Maximum number of power iterations (>= 1).
        step: Finite-difference step h > 0; default as above.
        tol: Stop when successive estimates differ by at most tol times the
            estimate.

    Returns:
        The estimate of ‖∇²f(x)‖₂ (0 for a locally linear f).

    Raises:
        ConfigError: On invalid ``iters``, ``step`` or ``tol``.
    """
    iters = _positive_int("iters", iters)
    tol = _non_negative("tol", tol)
    xv = np.asarray(x, dtype=np.float64)
    h = (
        np.finfo(np.float64).eps ** (1.0 / 3.0) * max(1.0, float(np.linalg.norm(xv)))
        if step is None
        else _positive("step", step)
    )
    v = rng.standard_normal(xv.shape)
    v /= np.linalg.norm(v)
    estimate = 0.0
    for _ in range(iters):
        hv = (
            np.asarray(problem.grad(xv + h * v), dtype=np.float64)
            - np.asarray(problem.grad(xv - h * v), dtype=np.float64)
        ) / (2.0 * h)
        norm = float(np.linalg.norm(hv))
        if norm == 0.0:
            return 0.0
        converged = abs(norm - estimate) <= tol * norm
        estimate = norm
        v = hv / norm
        if converged:
            break
    return estimate


@dataclass(frozen=True, slots=True)
class NoiseEstimate:
    """Noise statistics at one point, from :func:`estimate_noise_sigma`.

    Attributes:
        rms: Root-mean-square noise norm sqrt(mean ‖g_i − ∇f(x)‖²), the σ of
            the bounded-variance assumption.
        fit: Sub-Weibull tail fit of the norms.
        theta: fit.theta.
        sigma: Sub-Weibull σ = 2^θ̂ ŝ (Definition 3.1 for the fitted model).
    """

    rms: float
    fit: TailFit
    theta: float
    sigma: float


def estimate_noise_sigma(
    problem: Problem,
    x: Vector,
    rng: np.random.Generator,
    num_samples: int,
    *,
    reference_grad: Vector | None = None,
    k: int | None = None,
) -> NoiseEstimate:
    """Estimate the noise level at x, as a variance and as a sub-Weibull pair.

    Draws ``num_samples`` noise norms with
    :func:`~clipasync.diagnostics.tails.noise_norms`, returns their RMS and fits
    P(‖ξ‖ > t) = exp(−(t/s)^{1/θ}) to their upper tail
    (:func:`~clipasync.diagnostics.tails.estimate_sub_weibull_theta`); for that
    model σ = 2^θ s satisfies E exp((‖ξ‖/σ)^{1/θ}) = 2 exactly.

    Args:
        problem: The objective.
        x: Point (not modified).
        rng: Source of the stochastic gradients.
        num_samples: Number of stochastic gradients (>= 3; the tail fit wants
            thousands).
        reference_grad: Used instead of ``problem.grad(x)`` if given.
        k: Upper order statistics for the tail fit (default top 1 %).

    Returns:
        The estimate.

    Raises:
        ConfigError: On invalid inputs, or if the norms are degenerate (zero).
    """
    norms = noise_norms(problem, x, rng, num_samples, reference_grad=reference_grad)
    fit = estimate_sub_weibull_theta(norms, k=k)
    return NoiseEstimate(
        rms=float(np.sqrt(np.mean(norms**2))),
        fit=fit,
        theta=fit.theta,
        sigma=fit.sigma,
    )


# ---------------------------------------------------------------------------
# report
