"""Numerics behind the sub-Weibull tail fit: an exponential GLM and an Orlicz norm.

:func:`exponential_glm` fits independent exponential observations y_i with mean
exp((X b)_i) by maximum likelihood; applied to the normalised spacings of upper
order statistics (Rényi's representation) it gives the tail index of
:func:`clipasync.diagnostics.tails.estimate_sub_weibull_theta`.
:func:`orlicz_norm` solves the sample version of the moment condition of
Erickson & Johansson (2026, Assumption 3.2), (1/n) Σ exp((x_j/σ)^{1/θ}) = 2.
Pure: no I/O.

References:
    Rényi. "On the theory of order statistics." Acta Mathematica Academiae
    Scientiarum Hungarica 4, 1953.

    Erickson, Johansson. "Clipping makes distributed and federated asynchronous SGD
    robust to stragglers." arXiv:2606.13287, 2026.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clipasync.diagnostics.samples import FloatArray

_MAX_ITER = 100


@dataclass(frozen=True, slots=True)
class GlmFit:
    """Maximum-likelihood fit of y_i ~ Exp(mean exp((X b)_i)).

    Attributes:
        coef: The coefficients b̂.
        converged: Whether Newton's method met its tolerance.
    """

    coef: FloatArray
    converged: bool


def _objective(eta: FloatArray, y: FloatArray) -> float:
    """Return the negative log-likelihood Σ (η_i + y_i e^{−η_i}) (convex in b)."""
    return float(np.sum(eta + y * np.exp(-eta)))


def exponential_glm(y: FloatArray, design: FloatArray) -> GlmFit:
    """Fit y_i ~ Exp with mean μ_i = exp((X b)_i) by Newton's method.

    The negative log-likelihood Σ (η_i + y_i e^{−η_i}), η = X b, is convex in b, so
    Newton's method with a backtracking line search finds the maximum when it
    exists. Under the model y_i/μ_i ~ Exp(1) (variance 1), so the Fisher
    information is XᵀX: with orthonormal non-constant columns each coefficient has
    standard error 1.

    Args:
        y: Non-negative observations (zeros allowed, not all zero).
        design: Design matrix X, shape (len(y), p), first column constant.

    Returns:
        The fit (``converged`` is False if the maximum does not exist, e.g. when
        ties leave too few positive y).
    """
    b = np.zeros(design.shape[1], dtype=np.float64)
    b[0] = math.log(float(np.mean(y))) / float(design[0, 0])
    eta = design @ b
    value = _objective(eta, y)
    for _ in range(_MAX_ITER):
        r = y * np.exp(-eta)
        grad = design.T @ (1.0 - r)
        hess = design.T @ (design * r[:, None])
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return GlmFit(coef=b, converged=False)
        t = 1.0
        while True:
            cand = b - t * step
            eta_c = design @ cand
            value_c = _objective(eta_c, y)
            if value_c <= value or t < 1e-12:
                break
            t *= 0.5
        b, eta, value = cand, eta_c, value_c
        if not math.isfinite(value):
            return GlmFit(coef=b, converged=False)
        if float(np.max(np.abs(t * step))) < 1e-10:
            return GlmFit(coef=b, converged=True)
    return GlmFit(coef=b, converged=False)


def orlicz_norm(samples: FloatArray, theta: float, guess: float | None = None) -> float:
    """Return σ with (1/n) Σ_j exp((x_j/σ)^{1/θ}) = 2, the empirical ψ_{1/θ} norm.

    For X = s·E^θ, E ~ Exp(1), the population value is σ = 2^θ s, since
    E exp(E/2) = 2. The left side decreases in σ from +∞ to 1; it is solved for
    log σ by Newton's method, safeguarded by bisection on the bracket
    [log x_max − θ log log(2n), log x_max − θ log log 2].

    Args:
        samples: Non-negative samples, at least one positive.
        theta: θ > 0.
        guess: Starting value for σ (clipped into the bracket); default the
            bracket's upper end.

    Returns:
        σ̂ > 0.
    """
    n = samples.size
    pos = samples[samples > 0.0]
    logs = np.log(pos)
    n_zero = n - pos.size
    top = float(logs.max())
    lo = top - theta * math.log(math.log(2.0 * n))
    hi = top - theta * math.log(math.log(2.0))

    def excess(lam: float) -> tuple[float, float]:
        # log((n_zero + Σ exp(u_j)) / n) − log 2 and its derivative in λ = log σ.
        u = np.exp((logs - lam) / theta)
        m = max(float(u.max()), 0.0)
        w = np.exp(u - m)
        total = float(w.sum()) + n_zero * math.exp(-m)
        value = m + math.log(total) - math.log(2.0 * n)
        slope = -float(w @ u) / (theta * total)
        return value, slope

    lam = hi if guess is None else min(max(math.log(guess), lo), hi)
    for _ in range(_MAX_ITER):
        value, slope = excess(lam)
        if abs(value) < 1e-13:
            break
        if value > 0.0:
            lo = lam
        else:
            hi = lam
        if hi - lo < 1e-13:
            break
        newton = lam - value / slope if slope < 0.0 else math.nan
        lam = newton if lo < newton < hi else 0.5 * (lo + hi)
    return math.exp(lam)
