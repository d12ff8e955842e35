"""Every theory number for one fixed-computation-model setting, side by side."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipasync.theory.advice import (
    DEFAULT_SAFETY_CONSTANT,
    ClippedAsgdAdvice,
    clipped_asgd_parameters,
    delay_adaptive_asgd_updates,
    vanilla_asgd_updates,
)
from clipasync.theory.bounds import (
    LowerBound,
    fixed_model_mean_delays,
    fixed_model_update_rate,
    ringmaster_time,
)
from clipasync.theory.checks import _compute_times


@dataclass(frozen=True, slots=True)
class TheoryReport:
    """Side-by-side theory numbers for one fixed-computation-model setting.

    Build it with :func:`theory_report`; the text of ``clipasync theory`` is made
    from it by :func:`clipasync.reports.theory_table.format_theory_report`.

    Attributes:
        eps: Norm-scale target ε.
        concurrency: τ_C = number of workers.
        max_delay: τ_max used for vanilla ASGD.
        update_rate: λ = Σ 1/τ_i (updates per time unit under Algorithm 1).
        clipped: Clipped-ASGD advice (audit constants).
        vanilla_updates: Vanilla ASGD iteration scale (constants omitted).
        delay_adaptive_updates: Delay-adaptive ASGD iteration scale.
        optimal_time: Ringmaster/optimal time bound (norm scale).
    """

    eps: float
    concurrency: int
    max_delay: float
    update_rate: float
    clipped: ClippedAsgdAdvice
    vanilla_updates: float
    delay_adaptive_updates: float
    optimal_time: LowerBound


def theory_report(
    compute_times: npt.ArrayLike,
    *,
    L: float,
    delta: float,
    sigma: float,
    theta: float,
    eps: float,
    zeta: float = 0.0,
    delta_prob: float | None = None,
    max_delay: float | None = None,
    K: float = DEFAULT_SAFETY_CONSTANT,
) -> TheoryReport:
    """Compute every theory number for workers with fixed compute times.

    Args:
        compute_times: Per-worker times τ_i > 0; τ_C is their count.
        L: Smoothness constant.
        delta: Initial gap Δ > 0.
        sigma: Noise level σ (used both as sub-Weibull σ and as the standard
            deviation of the baselines' bounded-variance assumption).
        theta: Sub-Weibull tail parameter θ.
        eps: Norm-scale target ε.
        zeta: Heterogeneity ζ (0 for Algorithm 1).
        delta_prob: Failure probability for the high-probability variant.
        max_delay: τ_max for vanilla ASGD; default the slowest worker's mean delay
            λτ_n − 1 under Algorithm 1, rounded up (an estimate: individual
            delays fluctuate around it).
        K: Safety constant of :func:`clipped_asgd_parameters`.

    Returns:
        The report.

    Raises:
        ConfigError: On invalid inputs.
    """
    tau = _compute_times(compute_times)
    n = int(tau.size)
    if max_delay is None:
        # The 1e-9 keeps an exact integer such as 39.000000000001 from rounding up.
        slowest = float(np.max(fixed_model_mean_delays(tau)))
        max_delay = float(math.ceil(slowest - 1e-9))
    return TheoryReport(
        eps=eps,
        concurrency=n,
        max_delay=max_delay,
        update_rate=fixed_model_update_rate(tau),
        clipped=clipped_asgd_parameters(
            L=L,
            delta=delta,
            sigma=sigma,
            theta=theta,
            eps=eps,
            concurrency=n,
            zeta=zeta,
            delta_prob=delta_prob,
            K=K,
        ),
        vanilla_updates=vanilla_asgd_updates(
            L=L, delta=delta, sigma=sigma, eps=eps, max_delay=max_delay
        ),
        delay_adaptive_updates=delay_adaptive_asgd_updates(
            L=L, delta=delta, sigma=sigma, eps=eps, concurrency=n
        ),
        optimal_time=ringmaster_time(tau, L=L, delta=delta, sigma=sigma, eps=eps),
    )
