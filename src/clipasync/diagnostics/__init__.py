"""Pure diagnostics of gradient noise: tail indices and survival curves.

See :mod:`clipasync.diagnostics.tails` for the sub-Weibull θ (and what it can
tell), :mod:`clipasync.diagnostics.hill` for the Hill index and
:mod:`clipasync.diagnostics.survival` for the curves of a tail plot.
"""

from __future__ import annotations

from clipasync.diagnostics.hill import hill_bootstrap_interval, hill_tail_index
from clipasync.diagnostics.norms import noise_norms
from clipasync.diagnostics.samples import MIN_SAMPLES
from clipasync.diagnostics.survival import (
    empirical_survival,
    gaussian_norm_reference,
    sub_weibull_survival,
)
from clipasync.diagnostics.tails import (
    POLYNOMIAL_Z,
    TailFit,
    estimate_sub_weibull_theta,
    theta_bootstrap_interval,
)

__all__ = [
    "MIN_SAMPLES",
    "POLYNOMIAL_Z",
    "TailFit",
    "empirical_survival",
    "estimate_sub_weibull_theta",
    "gaussian_norm_reference",
    "hill_bootstrap_interval",
    "hill_tail_index",
    "noise_norms",
    "sub_weibull_survival",
    "theta_bootstrap_interval",
]
