"""Theory calculators: rates, parameter choices and reference delays, all pure.

What comes from where (see ``PAPER.md``):

* The *rate* of clipped asynchronous SGD (Erickson & Johansson, 2026, Thm 4.2),
  Õ(σ²/ε⁴ + στ_C/ε³ + τ_C/ε²) iterations for (1/T) Σ E‖∇f(x_t)‖ <= ε, and its
  high-probability version (Thm 4.3) with log^{2θ}(1/δ) and log^θ(1/δ) factors, are
  the paper's. The *constants* in :func:`clipped_asgd_parameters` (W, q, c, R, η, T)
  are **not** the paper's: they are the constructive choice reconstructed by a
  third-party reproduction audit (MachineLearning-Nerd/icml26-clipped-asynchronous-sgd,
  ``derivation.md``), with a free "sufficiently large" safety constant K. Treat
  them as a consistent, conservative instance of the theorem, not as tuned values.
* Vanilla and delay-adaptive ASGD rates (Koloskova et al., 2022; Mishchenko et al.,
  2022) and the optimal time in the fixed computation model (Tyurin & Richtárik,
  2023; Maranjyan et al., 2025) are given up to absolute constants, which are
  omitted.
* The fixed-model update rate and delays are exact long-run averages, derived in the
  docstrings.

Two accuracy scales appear in the literature. The paper measures the average gradient
*norm* (target ε); most related work measures the squared norm (target ε' = ε²).
Every function here uses the norm scale except :func:`optimal_time_lower_bound`,
which keeps the squared-norm form of Tyurin & Richtárik; :func:`ringmaster_time` is
the same bound on the norm scale.

References:
    Erickson, Johansson. "Clipping makes distributed and federated asynchronous SGD
    robust to stragglers." arXiv:2606.13287, 2026.

    Koloskova, Stich, Jaggi. "Sharper convergence guarantees for asynchronous SGD for
    distributed and federated learning." NeurIPS 2022.

    Mishchenko, Bach, Even, Woodworth. "Asynchronous SGD beats minibatch SGD under
    arbitrary delays." NeurIPS 2022.

    Tyurin, Richtárik. "Optimal time complexities of parallel stochastic optimization
    methods under a fixed computation model." NeurIPS 2023.

    Maranjyan, Tyurin, Richtárik. "Ringmaster ASGD: the first asynchronous SGD with
    optimal time complexity." ICML 2025.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipasync.diagnostics.tails import TailFit, estimate_sub_weibull_theta, noise_norms
from clipasync.errors import ConfigError
from clipasync.problems.base import Problem
from clipasync.types import Vector

#: Default safety constant K of the audit's construction (see clipped_asgd_parameters).
DEFAULT_SAFETY_CONSTANT = 16.0


# ---------------------------------------------------------------------------
# validation helpers


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return v


def _positive(name: str, value: float) -> float:
    v = _finite(name, value)
    if v <= 0.0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return v


def _non_negative(name: str, value: float) -> float:
    v = _finite(name, value)
    if v < 0.0:
        raise ConfigError(f"{name} must be non-negative, got {value}")
    return v


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _compute_times(compute_times: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return the validated compute times sorted ascending (τ_1 <= ... <= τ_n)."""
    arr = np.asarray(compute_times, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(
            f"compute_times must be a non-empty 1-D sequence, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0):
        raise ConfigError(
            f"compute_times must be positive and finite, got {arr.tolist()}"
        )
    return np.sort(arr)


# ---------------------------------------------------------------------------
# fixed computation model


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


# ---------------------------------------------------------------------------
# iteration complexities


def sub_weibull_second_moment_constant(theta: float) -> float:
    """Return K_θ = 2(2θ/e)^{2θ}, with E‖ξ‖² <= K_θ σ² for ξ ~ subW(θ, σ).

    Derivation from Definition 3.1, E exp(Y) <= 2 with Y = (‖ξ‖/σ)^{1/θ}: for
    p = 2θ, max_{y>=0} y^p e^{−y} = (p/e)^p, so ‖ξ‖²/σ² = Y^p <= (p/e)^p e^Y and
    E‖ξ‖² <= 2(2θ/e)^{2θ} σ². (For θ = 1/2 this is 2/e ≈ 0.74; for θ = 2.71,
    about 84.) This is the θ-dependent constant the audit leaves as "K_θ".

    Args:
        theta: Tail parameter θ > 0.

    Returns:
        K_θ.

    Raises:
        ConfigError: If ``theta`` is not positive.
    """
    theta = _positive("theta", theta)
    p = 2.0 * theta
    return 2.0 * math.pow(p / math.e, p)


@dataclass(frozen=True, slots=True)
class ClippedAsgdAdvice:
    """A constant stepsize and clip level for clipped ASGD, with its horizon.

    The constants are the third-party audit's reconstruction, not the paper's
    (see :func:`clipped_asgd_parameters`).

    Attributes:
        stepsize: Constant stepsize η.
        max_norm: Clip level c.
        num_updates: Horizon T (server updates) after which the guarantee holds.
        stepsize_regime: Which term of η's minimum binds: ``"concurrency"``
            (1/(Kτ_C L)), ``"noise"`` (ε²/(KLR)) or ``"clipping"`` (ε/(Kcτ_C L));
            the first in this order on ties.
        K: Safety constant used.
        K_theta: Second-moment constant K_θ (E‖ξ‖² <= K_θσ²).
        W: K_θσ² + 2ζ², the bound on the squared gradient error.
        q: Polylog inflation factor of c over σ.
        R: ε² + (σ² + ζ²)q², the second-moment scale entering η.
        rate_terms: The three terms of the paper's rate with LΔ made explicit,
            ((σ²+ζ²)LΔ/ε⁴, (σ+ζ)τ_C LΔ/ε³, τ_C LΔ/ε²), times log^{2θ}(1/δ) and
            log^θ(1/δ) on the first two in the high-probability case; constants
            and the Õ logs omitted.
        high_probability: Whether ``delta_prob`` was given.
        theorem: The paper's theorem whose rate ``rate_terms`` follows: "4.2"
            (expectation), "4.3" (high probability), "5.1"/"5.2" (the same with
            heterogeneity ζ > 0, Algorithm 2).
    """

    stepsize: float
    max_norm: float
    num_updates: int
    stepsize_regime: str
    K: float
    K_theta: float
    W: float
    q: float
    R: float
    rate_terms: tuple[float, float, float]
    high_probability: bool
    theorem: str


#: (heterogeneous, high probability) -> the paper's theorem with that rate.
_THEOREMS = {
    (False, False): "4.2",
    (False, True): "4.3",
    (True, False): "5.1",
    (True, True): "5.2",
}


def _construct(
    *,
    L: float,
    delta: float,
    sigma: float,
    zeta: float,
    eps: float,
    tau_c: int,
    K: float,
    W: float,
    q: float,
) -> tuple[float, float, float, int, str]:
    """Return (c, R, η, T, regime) of the audit's construction for a given q."""
    c = eps + 2.0 * zeta + 4.0 * sigma * q + math.sqrt(8.0 * W)
    R = eps**2 + (sigma**2 + zeta**2) * q**2
    candidates = {
        "concurrency": 1.0 / (K * tau_c * L),
        "noise": eps**2 / (K * L * R),
        "clipping": eps / (K * c * tau_c * L),
    }
    regime = min(candidates, key=lambda name: candidates[name])
    eta = candidates[regime]
    T = math.ceil(K * (1.0 + delta) / (eta * eps**2)) + tau_c + 1
    return c, R, eta, T, regime


def clipped_asgd_parameters(
    *,
    L: float,
    delta: float,
    sigma: float,
    theta: float,
    eps: float,
    concurrency: int,
    zeta: float = 0.0,
    delta_prob: float | None = None,
    K: float = DEFAULT_SAFETY_CONSTANT,
) -> ClippedAsgdAdvice:
    """Return a constant stepsize η, clip level c and horizon T for clipped ASGD.

    Only the *rate* is the paper's: Thm 4.2 (Erickson & Johansson, 2026) gives
    (1/T) Σ_t E‖∇f(x_t)‖ <= ε after T = Õ(σ²/ε⁴ + στ_C/ε³ + τ_C/ε²) updates, with
    no dependence on the maximum delay; Thm 5.1 adds ζ for Algorithm 2. The
    **constants below were reconstructed by a third-party audit** (PAPER.md §4.2),
    which re-derived the proof constructively:

    .. math::
        W &= K_\\theta\\sigma^2 + 2\\zeta^2, \\qquad
        q = \\max\\{1, \\log(2 + KW/\\varepsilon^2)^\\theta\\}, \\\\
        c &= \\varepsilon + 2\\zeta + 4\\sigma q + \\sqrt{8W}, \\qquad
        R = \\varepsilon^2 + (\\sigma^2 + \\zeta^2) q^2, \\\\
        \\eta &= \\min\\Bigl\\{\\frac{1}{K\\tau_C L}, \\frac{\\varepsilon^2}{KLR},
        \\frac{\\varepsilon}{Kc\\tau_C L}\\Bigr\\}, \\qquad
        T = \\Bigl\\lceil \\frac{K(1+\\Delta)}{\\eta\\varepsilon^2}\\Bigr\\rceil
        + \\tau_C + 1.

    Why each piece: W bounds the squared error of a (heterogeneous) stochastic
    gradient; c exceeds the noise scale by the factor q = log^θ(·) so that the
    clipping bias W·exp(−((c − 2ζ)/(4σ))^{1/θ}) is below ε²/K, and c² >= 8W
    makes a clipped step descend by >= ηc‖∇f‖/8 when ‖∇f‖ > c/2; the three
    stepsize caps bound the smoothness term, the variance term and the
    staleness term ‖x_t − x̃_t‖ <= ηcτ_C (at most τ_C clipped gradients are in
    flight); Δ̄ = 1 + Δ absorbs the initial τ_C jobs. K_θ = 2(2θ/e)^{2θ}
    (:func:`sub_weibull_second_moment_constant`) is our choice, derived from
    Definition 3.1. K is the audit's unspecified "sufficiently large" absolute
    constant; the default 16 matches its target Q <= ε²/16 but is not derived, so
    η and T are order-of-magnitude values (typically very conservative).

    High probability (``delta_prob`` = δ given; Thm 4.3). The audit's repaired
    derivation uses c² = O(σ² log(T/δ)^{2θ} + ζ²), i.e. q is raised to
    max{q, log(T/δ)^θ}. Since T depends on c, the pair is solved by fixed-point
    iteration from the expectation T (T only grows, so it stops once T repeats).
    The rate is then Õ(σ² log^{2θ}(1/δ)/ε⁴ + στ_C log^θ(1/δ)/ε³ + τ_C/ε²). The
    audit notes that the printed appendix's own count carries an extra
    (σ² log(1/δ)^{2θ+1} + ζ²)/ε² term not in the headline rate; it is not
    included here.

    Args:
        L: Smoothness constant L > 0.
        delta: Initial gap Δ = f(x_0) − inf f >= 0.
        sigma: Sub-Weibull noise parameter σ >= 0 (Definition 3.1).
        theta: Sub-Weibull tail parameter θ > 0.
        eps: Target for the average gradient norm (norm scale), ε > 0; the
            theorems state ε in (0, 1).
        concurrency: τ_C, the maximal number of jobs in flight (n at full load).
        zeta: Heterogeneity bound ζ >= 0 (Assumption 5.1; 0 for Algorithm 1).
        delta_prob: Failure probability δ in (0, 1) for the high-probability
            variant; ``None`` for the in-expectation guarantee.
        K: Safety constant K >= 1.

    Returns:
        The advice, with the intermediate quantities and the rate terms.

    Raises:
        ConfigError: On any invalid input.

    Examples:
        >>> a = clipped_asgd_parameters(
        ...     L=1.0, delta=1.0, sigma=0.0, theta=1.0, eps=0.5, concurrency=4)
        >>> a.max_norm, a.stepsize, a.stepsize_regime  # c = ε without noise
        (0.5, 0.015625, 'concurrency')
    """
    L = _positive("L", L)
    delta = _non_negative("delta", delta)
    sigma = _non_negative("sigma", sigma)
    theta = _positive("theta", theta)
    eps = _positive("eps", eps)
    tau_c = _positive_int("concurrency", concurrency)
    zeta = _non_negative("zeta", zeta)
    K = _finite("K", K)
    if K < 1.0:
        raise ConfigError(f"K must be at least 1, got {K}")
    if delta_prob is not None:
        delta_prob = _finite("delta_prob", delta_prob)
        if not 0.0 < delta_prob < 1.0:
            raise ConfigError(f"delta_prob must lie in (0, 1), got {delta_prob}")

    k_theta = sub_weibull_second_moment_constant(theta)
    W = k_theta * sigma**2 + 2.0 * zeta**2
    q = max(1.0, math.log(2.0 + K * W / eps**2) ** theta)
    args = {"L": L, "delta": delta, "sigma": sigma, "zeta": zeta, "eps": eps}
    c, R, eta, T, regime = _construct(**args, tau_c=tau_c, K=K, W=W, q=q)

    noise_log, cross_log = 1.0, 1.0
    if delta_prob is not None:
        q_exp = q
        for _ in range(1000):
            q = max(q_exp, math.log(T / delta_prob) ** theta)
            c, R, eta, T_next, regime = _construct(**args, tau_c=tau_c, K=K, W=W, q=q)
            if T_next == T:
                break
            T = T_next
        else:  # pragma: no cover - needs an extreme θ
            warnings.warn(
                f"high-probability horizon did not settle for theta={theta}; "
                f"using T={T}",
                RuntimeWarning,
                stacklevel=2,
            )
        log_inv = math.log(1.0 / delta_prob)
        noise_log, cross_log = log_inv ** (2.0 * theta), log_inv**theta

    ld = L * delta
    rate_terms = (
        (sigma**2 + zeta**2) * ld / eps**4 * noise_log,
        (sigma + zeta) * tau_c * ld / eps**3 * cross_log,
        tau_c * ld / eps**2,
    )
    return ClippedAsgdAdvice(
        stepsize=eta,
        max_norm=c,
        num_updates=T,
        stepsize_regime=regime,
        K=K,
        K_theta=k_theta,
        W=W,
        q=q,
        R=R,
        rate_terms=rate_terms,
        high_probability=delta_prob is not None,
        theorem=_THEOREMS[(zeta > 0.0, delta_prob is not None)],
    )


def vanilla_asgd_updates(
    *,
    L: float,
    delta: float,
    sigma: float,
    eps: float,
    max_delay: float,
    mean_delay: float | None = None,
) -> float:
    """Return the iteration count of constant-stepsize ASGD, constants omitted.

    On the norm scale (ε' = ε² in the squared-norm statements), classical analyses
    of ASGD with a constant stepsize tuned to τ_max need

    .. math:: O\\Bigl(\\frac{\\sigma^2 L\\Delta}{\\varepsilon^4} +
        \\frac{\\max(1, \\tau_{\\max}) L\\Delta}{\\varepsilon^2}\\Bigr)

    updates; with ``mean_delay`` given, the sharper bound of Koloskova et al. (2022)
    replaces τ_max by sqrt(τ_max τ_avg). ``max(1, ·)`` keeps the SGD term when
    there is no delay. Absolute constants are omitted: compare orders, not values.

    Args:
        L: Smoothness constant.
        delta: Initial gap Δ.
        sigma: Noise standard deviation σ >= 0.
        eps: Target for the gradient norm (norm scale).
        max_delay: τ_max >= 0.
        mean_delay: τ_avg in [0, τ_max], optional.

    Returns:
        The iteration count scale.

    Raises:
        ConfigError: On invalid inputs.
    """
    L, delta = _positive("L", L), _positive("delta", delta)
    sigma, eps = _non_negative("sigma", sigma), _positive("eps", eps)
    tau = _non_negative("max_delay", max_delay)
    if mean_delay is not None:
        avg = _non_negative("mean_delay", mean_delay)
        if avg > tau:
            raise ConfigError(
                f"mean_delay must not exceed max_delay={tau}, got {mean_delay}"
            )
        tau = math.sqrt(tau * avg)
    return L * delta * (sigma**2 / eps**4 + max(1.0, tau) / eps**2)


def delay_adaptive_asgd_updates(
    *, L: float, delta: float, sigma: float, eps: float, concurrency: int
) -> float:
    """Return the iteration count of delay-adaptive ASGD, constants omitted.

    Mishchenko et al. (2022) (stepsize γ·min(1, n/d_t)) and Koloskova et al.
    (2022) need O(σ²LΔ/ε⁴ + nLΔ/ε²) updates on the norm scale, n the number of
    workers (the concurrency τ_C). Absolute constants are omitted.

    Args:
        L: Smoothness constant.
        delta: Initial gap Δ.
        sigma: Noise standard deviation σ >= 0.
        eps: Target for the gradient norm (norm scale).
        concurrency: n >= 1.

    Returns:
        The iteration count scale.

    Raises:
        ConfigError: On invalid inputs.
    """
    L, delta = _positive("L", L), _positive("delta", delta)
    sigma, eps = _non_negative("sigma", sigma), _positive("eps", eps)
    n = _positive_int("concurrency", concurrency)
    return L * delta * (sigma**2 / eps**4 + n / eps**2)


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


@dataclass(frozen=True, slots=True)
class TheoryReport:
    """Side-by-side theory numbers for one fixed-computation-model setting.

    Build it with :func:`theory_report`; print it with :meth:`to_text`.

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

    def rows(self) -> list[tuple[str, str, str]]:
        """Return the (quantity, value, source) rows of :meth:`to_text`."""
        c = self.clipped
        lam = self.update_rate
        return [
            ("target eps (norm scale)", f"{self.eps:.4g}", "input"),
            ("concurrency tau_C", f"{self.concurrency}", "input"),
            ("max delay tau_max", f"{self.max_delay:.4g}", "input or fixed model"),
            ("update rate sum 1/tau_i", f"{lam:.4g}", "exact, Alg. 1"),
            ("clipped: stepsize eta", f"{c.stepsize:.4g}", "audit constants"),
            ("clipped: max_norm c", f"{c.max_norm:.4g}", "audit constants"),
            (
                "clipped: updates T",
                f"{c.num_updates:.4g}",
                f"audit constants, K={c.K:g}",
            ),
            (
                "clipped: time T/rate",
                f"{c.num_updates / lam:.4g}",
                f"audit constants, K={c.K:g}",
            ),
            ("clipped: eta regime", c.stepsize_regime, "audit constants"),
            (
                "clipped: rate term 1",
                f"{c.rate_terms[0]:.4g}",
                f"Thm {c.theorem} rate, no consts",
            ),
            (
                "clipped: rate term 2",
                f"{c.rate_terms[1]:.4g}",
                f"Thm {c.theorem} rate, no consts",
            ),
            (
                "clipped: rate term 3",
                f"{c.rate_terms[2]:.4g}",
                f"Thm {c.theorem} rate, no consts",
            ),
            ("vanilla ASGD updates", f"{self.vanilla_updates:.4g}", "O(), no consts"),
            (
                "vanilla ASGD time",
                f"{self.vanilla_updates / lam:.4g}",
                "O(), no consts",
            ),
            (
                "delay-adaptive updates",
                f"{self.delay_adaptive_updates:.4g}",
                "O(), no consts",
            ),
            (
                "optimal time (Ringmaster)",
                f"{self.optimal_time.value:.4g}",
                f"Theta(), no consts, m={self.optimal_time.m}",
            ),
        ]

    def to_text(self) -> str:
        """Return the report as a small left/right-aligned plain-text table."""
        header = ("quantity", "value", "source")
        rows = [header, *self.rows()]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{a:<{w0}}  {b:>{w1}}  {s}".rstrip() for a, b, s in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        return "\n".join(lines)


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
