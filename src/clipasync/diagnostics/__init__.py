"""Pure diagnostics of gradient noise: tail indices and survival curves.

See :mod:`clipasync.diagnostics.tails` for the estimators and their references.
"""

from __future__ import annotations

from clipasync.diagnostics.tails import (
    MIN_SAMPLES,
    TailFit,
    empirical_survival,
    estimate_sub_weibull_theta,
    gaussian_norm_reference,
    hill_bootstrap_interval,
    hill_tail_index,
    noise_norms,
    sub_weibull_survival,
)

__all__ = [
    "MIN_SAMPLES",
    "TailFit",
    "empirical_survival",
    "estimate_sub_weibull_theta",
    "gaussian_norm_reference",
    "hill_bootstrap_interval",
    "hill_tail_index",
    "noise_norms",
    "sub_weibull_survival",
]
