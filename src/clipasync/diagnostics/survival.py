"""Survival curves for a noise-norm tail plot: empirical, sub-Weibull, Gaussian norm.

The curves a log-survival plot of gradient-noise norms needs: the empirical
survival of the samples, the sub-Weibull law of Erickson & Johansson (2026,
Assumption 3.2) and the norm of a Gaussian with the same second moment. Pure: no
I/O, no plotting.

References:
    Vladimirova, Girard, Nguyen, Arbel. "Sub-Weibull distributions: generalizing
    sub-Gaussian and sub-Exponential properties to heavier tailed distributions."
    Stat 9(1), 2020. arXiv:1905.04955.

    Erickson, Johansson. "Clipping makes distributed and federated asynchronous SGD
    robust to stragglers." arXiv:2606.13287, 2026.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.diagnostics.samples import FloatArray, as_samples, check_positive
from clipasync.errors import ConfigError


def sub_weibull_survival(
    t: npt.ArrayLike, theta: float, scale: float, location: float = 0.0
) -> FloatArray:
    """Return the model survival P(X > t) = exp(−(max(t − a, 0)/s)^{1/θ}).

    With ``location`` a = 0 (the default) this is the distribution of s·E^θ,
    E ~ Exp(1) (the synthetic noise of the simulator recipe) and the law of
    Assumption 3.2 with σ = 2^θ s. With a = :attr:`TailFit.location
    <clipasync.diagnostics.tails.TailFit.location>` and s = :attr:`TailFit.tail_scale
    <clipasync.diagnostics.tails.TailFit.tail_scale>` it is the fitted tail of
    :func:`~clipasync.diagnostics.tails.estimate_sub_weibull_theta`, valid above
    the threshold of the fit. The curve to overlay on :func:`empirical_survival`.

    Args:
        t: Thresholds (any shape).
        theta: Tail parameter θ > 0.
        scale: Scale s > 0 (e.g. :attr:`TailFit.scale
            <clipasync.diagnostics.tails.TailFit.scale>`).
        location: Location a (finite; default 0).

    Returns:
        Survival probabilities, same shape as ``t``; 1 for t <= a.

    Raises:
        ConfigError: If ``theta`` or ``scale`` is not a positive finite number, or
            ``location`` is not finite.

    Examples:
        >>> float(sub_weibull_survival(2.0, theta=1.0, scale=2.0))  # exp(-1)
        0.36787944117144233
        >>> float(sub_weibull_survival(12.0, theta=1.0, scale=2.0, location=10.0))
        0.36787944117144233
    """
    check_positive("theta", theta)
    check_positive("scale", scale)
    if not math.isfinite(location):
        raise ConfigError(f"location must be finite, got {location!r}")
    tt = np.maximum(np.asarray(t, dtype=np.float64) - location, 0.0)
    out: FloatArray = np.exp(-((tt / scale) ** (1.0 / theta)))
    return out


def empirical_survival(samples: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return the samples sorted ascending and their empirical survival P̂(X ≥ x).

    With x_(1) <= ... <= x_(n) the survival at x_(j) is (n − j + 1)/n, which runs
    from 1 down to 1/n and so is safe on a logarithmic axis (the strict version
    P̂(X > x_(n)) = 0 is not).

    Args:
        samples: One-dimensional, finite, non-negative samples.

    Returns:
        ``(sorted_samples, survival)``, both of length n.

    Raises:
        ConfigError: On invalid samples.

    Examples:
        >>> xs, surv = empirical_survival([3.0, 1.0, 2.0, 4.0])
        >>> xs.tolist(), surv.tolist()
        ([1.0, 2.0, 3.0, 4.0], [1.0, 0.75, 0.5, 0.25])
    """
    arr = np.sort(as_samples(samples))
    n = arr.size
    surv = np.arange(n, 0, -1, dtype=np.float64) / n
    return arr, surv


def gaussian_norm_reference(
    t: npt.ArrayLike, dim: int, second_moment: float
) -> FloatArray:
    """Return P(‖Z‖ > t) for Z ~ N(0, (m₂/d) I_d), the Gaussian with E‖Z‖² = m₂.

    This is the light-tailed reference for a noise-norm tail plot: Gaussian noise
    with the same second moment as the observed norms (pass the mean squared
    norm). ‖Z‖ = √(m₂/d)·χ_d and

    .. math:: P(\\chi_d > u) = Q\\bigl(d/2,\\; u^2/2\\bigr),

    with Q the regularised upper incomplete gamma function (``scipy.special``,
    available through scikit-learn's dependency on SciPy).

    Args:
        t: Thresholds (any shape).
        dim: Dimension d >= 1.
        second_moment: m₂ = E‖Z‖² > 0.

    Returns:
        Survival probabilities, same shape as ``t``; 1 for t <= 0.

    Raises:
        ConfigError: If ``dim`` < 1 or ``second_moment`` is not positive.

    Examples:
        >>> round(float(gaussian_norm_reference(1.0, dim=1, second_moment=1.0)), 4)
        0.3173
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"dim must be a positive integer, got {dim!r}")
    check_positive("second_moment", second_moment)
    # SciPy ships no type information; importing through importlib keeps mypy
    # --strict clean without a per-module override.
    special: Any = importlib.import_module("scipy.special")
    u = np.maximum(np.asarray(t, dtype=np.float64), 0.0) / math.sqrt(
        second_moment / dim
    )
    out: FloatArray = np.asarray(
        special.gammaincc(dim / 2.0, u * u / 2.0), dtype=np.float64
    )
    return out
