"""Time lower bounds, and exact update rates and delays of the fixed computation
model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipasync.theory.checks import (
    _compute_times,
    _non_negative,
    _positive,
    _positive_int,
)


@dataclass(frozen=True, slots=True)
class LowerBound:
    """Optimal time in the fixed computation model, up to an absolute constant.

    Attributes:
        value: min over m of ``values``.
        m: Minimising number of fastest workers (1-based; the smallest on ties).
        harmonic_mean: H_m = ((1/m) Σ_{i<=m} 1/τ_i)^{−1} at the minimiser.
        values: The bracket for every m = 1..n, in order.
    """

    value: float
    m: int
    harmonic_mean: float
    values: tuple[float, ...]


def optimal_time_lower_bound(
    compute_times: npt.ArrayLike, *, L: float, delta: float, sigma: float, eps: float
) -> LowerBound:
    """Return the optimal time complexity of the fixed computation model.

    Worker i needs τ_i time units per stochastic gradient; sort τ_1 <= ... <= τ_n.
    Tyurin & Richtárik (2023) show that no method finds E‖∇f‖² <= ε faster than

    .. math:: T^* = \\Theta\\Bigl(\\min_{m\\in[n]} \\Bigl(\\frac1m\\sum_{i=1}^m
        \\frac1{\\tau_i}\\Bigr)^{-1}
        \\Bigl(\\frac{L\\Delta}{\\varepsilon} + \\frac{\\sigma^2 L\\Delta}{m
        \\varepsilon^2}\\Bigr)\\Bigr),

    and Rennala/Ringmaster SGD attain it. Note the 1/m *inside* the harmonic mean:
    equivalently (Σ_{i<=m} 1/τ_i)^{−1}(mLΔ/ε + σ²LΔ/ε²). The Θ's absolute constant
    is omitted, so ``value`` is a scale, not a prediction in time units.

    Args:
        compute_times: Per-worker times τ_i > 0 (any order).
        L: Smoothness constant L > 0.
        delta: Initial gap Δ = f(x_0) − inf f > 0.
        sigma: Noise standard deviation σ >= 0 (E‖g − ∇f‖² <= σ²).
        eps: Target on the **squared-norm** scale, E‖∇f‖² <= eps; pass ε² to
            compare with the paper's norm-scale ε (or use :func:`ringmaster_time`).

    Returns:
        The minimum, its m, H_m and the bracket for every m.

    Raises:
        ConfigError: On empty or non-positive times or invalid constants.

    Examples:
        τ = (1, 2, 4), LΔ = 1, σ² = 8, ε = 1: m = 1 gives 1·(1 + 8) = 9, m = 2 gives
        (4/3)(1 + 4) = 20/3, m = 3 gives (12/7)(1 + 8/3) = 44/7.

        >>> lb = optimal_time_lower_bound(
        ...     [4.0, 1.0, 2.0], L=1.0, delta=1.0, sigma=8**0.5, eps=1.0)
        >>> lb.m, round(lb.value * 7, 10)
        (3, 44.0)
    """
    tau = _compute_times(compute_times)
    L = _positive("L", L)
    delta = _positive("delta", delta)
    sigma = _non_negative("sigma", sigma)
    eps = _positive("eps", eps)
    m = np.arange(1, tau.size + 1, dtype=np.float64)
    harmonic = m / np.cumsum(1.0 / tau)
    values = harmonic * (L * delta / eps + sigma**2 * L * delta / (m * eps**2))
    best = int(np.argmin(values))
    return LowerBound(
        value=float(values[best]),
        m=best + 1,
        harmonic_mean=float(harmonic[best]),
        values=tuple(float(v) for v in values),
    )


def ringmaster_time(
    compute_times: npt.ArrayLike, *, L: float, delta: float, sigma: float, eps: float
) -> LowerBound:
    """Return Ringmaster ASGD's (optimal) time on the paper's norm scale.

    Maranjyan et al. (2025): to reach E‖∇f‖ <= ε-type accuracy (squared norm ε²),
    Ringmaster ASGD needs O(min_m H_m (LΔ/ε² + σ²LΔ/(mε⁴))) time, which is
    :func:`optimal_time_lower_bound` with ε² in place of its ε. Constants omitted.

    Args:
        compute_times: Per-worker times τ_i > 0.
        L: Smoothness constant.
        delta: Initial gap Δ.
        sigma: Noise standard deviation σ.
        eps: Target on the **norm** scale.

    Returns:
        The bound, as for :func:`optimal_time_lower_bound`.

    Raises:
        ConfigError: On invalid inputs.
    """
    eps = _positive("eps", eps)
    return optimal_time_lower_bound(
        compute_times, L=L, delta=delta, sigma=sigma, eps=eps**2
    )


def fixed_model_update_rate(compute_times: npt.ArrayLike) -> float:
    """Return the server update rate λ = Σ_i 1/τ_i of Algorithm 1.

    In Algorithm 1 (and vanilla ASGD) a worker that returns a gradient is
    re-dispatched at once, so worker i delivers exactly one gradient every τ_i
    time units and every arrival is an update.

    Args:
        compute_times: Per-worker times τ_i > 0.

    Returns:
        Updates per time unit.

    Raises:
        ConfigError: On empty or non-positive times.

    Examples:
        >>> fixed_model_update_rate([1.0] * 8 + [4.0] * 8)
        10.0
    """
    return float(np.sum(1.0 / _compute_times(compute_times)))


def fixed_model_mean_delays(compute_times: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return each worker's long-run mean delay λτ_i − 1 under Algorithm 1.

    A job of worker i is in flight for τ_i time units, during which the server
    applies on average λτ_i updates (λ = Σ_j 1/τ_j), the last of which is the job's
    own; its delay (version at arrival minus version at dispatch, before its own
    update) therefore averages λτ_i − 1. The long-run average does not depend on
    how simultaneous arrivals are ordered: each other worker's update falls into
    exactly one of worker i's consecutive job windows.

    Args:
        compute_times: Per-worker times τ_i > 0, in worker order.

    Returns:
        Mean delays in the order given (not sorted).

    Raises:
        ConfigError: On empty or non-positive times.
    """
    _compute_times(compute_times)
    tau = np.asarray(compute_times, dtype=np.float64)
    out: npt.NDArray[np.float64] = float(np.sum(1.0 / tau)) * tau - 1.0
    return out


@dataclass(frozen=True, slots=True)
class TwoSpeedDelays:
    """Reference values of Algorithm 1 with fast (time 1) and slow (time D) workers.

    Attributes:
        num_workers: n = num_fast + num_slow (= the concurrency τ_C).
        update_rate: λ = num_fast + num_slow/D updates per time unit.
        mean_time_per_update: 1/λ.
        mean_delay: Mean delay over all updates, n − 1.
        fast_mean_delay: Mean delay of a fast worker's gradient, λ − 1.
        slow_mean_delay: Mean delay of a slow worker's gradient, λD − 1.
    """

    num_workers: int
    update_rate: float
    mean_time_per_update: float
    mean_delay: float
    fast_mean_delay: float
    slow_mean_delay: float


def two_speed_delays(num_fast: int, num_slow: int, D: float) -> TwoSpeedDelays:
    """Return the exact long-run rate and delays for fast/slow workers (Alg. 1).

    Derivation. Fast workers take 1 time unit per gradient and slow ones D, so the
    update rate is λ = n_f + n_s/D (:func:`fixed_model_update_rate`). Every update
    is seen by the n − 1 *other* jobs in flight (the arriving worker is re-dispatched
    right after it), so each update adds n − 1 to the total delay and the mean
    delay per update is n − 1, whatever the speeds (Little's law minus the job's
    own update). Per worker, the mean delay is λτ_i − 1
    (:func:`fixed_model_mean_delays`): λ − 1 for fast and λD − 1 for slow workers.
    Check: the update-weighted average (n_f(λ − 1) + (n_s/D)(λD − 1))/λ = n − 1.

    For the paper's 8 fast / 8 slow setting: λ = 8 + 8/D (10 for D = 4, 9 for
    D = 8), mean delay 15 and slow-worker mean delay 8D + 7 (39, 71).

    Args:
        num_fast: Number of workers with compute time 1 (>= 1).
        num_slow: Number of workers with compute time D (>= 1).
        D: Slow-down factor D > 0.

    Returns:
        The reference values.

    Raises:
        ConfigError: If a count is not a positive integer or D is not positive.

    Examples:
        >>> r = two_speed_delays(8, 8, 4.0)
        >>> r.update_rate, r.mean_delay, r.slow_mean_delay
        (10.0, 15.0, 39.0)
    """
    num_fast = _positive_int("num_fast", num_fast)
    num_slow = _positive_int("num_slow", num_slow)
    D = _positive("D", D)
    n = num_fast + num_slow
    rate = num_fast + num_slow / D
    return TwoSpeedDelays(
        num_workers=n,
        update_rate=rate,
        mean_time_per_update=1.0 / rate,
        mean_delay=float(n - 1),
        fast_mean_delay=rate - 1.0,
        slow_mean_delay=rate * D - 1.0,
    )
