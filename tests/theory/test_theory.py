"""Tests of clipasync.theory: bounds, parameter choices, delays, estimators of L, σ."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.theory import (
    clipped_asgd_parameters,
    delay_adaptive_asgd_updates,
    estimate_noise_sigma,
    estimate_smoothness,
    fixed_model_mean_delays,
    fixed_model_update_rate,
    optimal_time_lower_bound,
    ringmaster_time,
    sub_weibull_second_moment_constant,
    two_speed_delays,
    vanilla_asgd_updates,
)


class Quadratic:
    """f(x) = ½ xᵀAx; stochastic gradients add noise of norm s·E^θ (uniform dir.)."""

    name = "quadratic"

    def __init__(self, a: np.ndarray, theta: float = 1.0, scale: float = 0.0) -> None:
        self.a = a
        self.dim = a.shape[0]
        self.theta = theta
        self.scale = scale

    def initial_point(self) -> np.ndarray:
        return np.ones(self.dim)

    def loss(self, x: np.ndarray) -> float:
        return 0.5 * float(x @ self.a @ x)

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.a @ x

    def stochastic_grad(
        self, x: np.ndarray, rng: np.random.Generator, worker: int | None = None
    ) -> np.ndarray:
        u = rng.standard_normal(self.dim)
        u /= np.linalg.norm(u)
        return self.grad(x) + self.scale * rng.exponential() ** self.theta * u

    def evaluate(self, x: np.ndarray) -> dict[str, float]:
        return {"loss": self.loss(x), "grad_norm": float(np.linalg.norm(self.grad(x)))}


def rotated(eigenvalues: list[float], seed: int) -> np.ndarray:
    """Return Q diag(λ) Qᵀ for a random orthogonal Q."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return q @ np.diag(eigenvalues) @ q.T


# --- fixed computation model: optimal time ------------------------------------


def test_lower_bound_small_case_by_hand() -> None:
    # τ = (1, 2, 4), L = Δ = ε = 1, σ² = 8. Bracket H_m (1 + 8/m), H_m = m / Σ 1/τ_i:
    #   m = 1: H = 1,           1 · (1 + 8)     = 9
    #   m = 2: H = 2/1.5 = 4/3, 4/3 · (1 + 4)   = 20/3 ≈ 6.667
    #   m = 3: H = 3/1.75=12/7, 12/7 · (1 + 8/3) = 44/7 ≈ 6.286  <- minimum
    lb = optimal_time_lower_bound(
        [4.0, 2.0, 1.0], L=1.0, delta=1.0, sigma=math.sqrt(8.0), eps=1.0
    )
    assert lb.values == pytest.approx((9.0, 20.0 / 3.0, 44.0 / 7.0))
    assert lb.m == 3
    assert lb.value == pytest.approx(44.0 / 7.0)
    assert lb.harmonic_mean == pytest.approx(12.0 / 7.0)
    # Without noise only the fastest worker matters: τ_1 · LΔ/ε.
    lb0 = optimal_time_lower_bound([4.0, 2.0, 1.0], L=1.0, delta=1.0, sigma=0.0, eps=1)
    assert (lb0.m, lb0.value) == (1, 1.0)


def test_lower_bound_sqrt_times_matches_plain_loop() -> None:
    n, L, delta, sigma, eps = 100, 2.0, 3.0, 1.0, 0.04
    taus = [math.sqrt(i) for i in range(1, n + 1)]
    best_value, best_m = math.inf, 0
    inv_sum = 0.0
    for m in range(1, n + 1):
        inv_sum += 1.0 / taus[m - 1]
        harmonic = 1.0 / (inv_sum / m)
        value = harmonic * (L * delta / eps + sigma**2 * L * delta / (m * eps**2))
        if value < best_value:
            best_value, best_m = value, m
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(taus)  # the order of the workers must not matter
    lb = optimal_time_lower_bound(shuffled, L=L, delta=delta, sigma=sigma, eps=eps)
    assert lb.m == best_m
    assert lb.value == pytest.approx(best_value, rel=1e-12)
    # H_m ≈ √m/2 puts the minimiser near m = σ²/ε = 25: the trade-off is exercised.
    assert 1 < lb.m < n


def test_ringmaster_time_is_the_bound_at_eps_squared() -> None:
    taus = [1.0, 1.0, 3.0, 10.0]
    a = ringmaster_time(taus, L=1.0, delta=2.0, sigma=1.0, eps=0.1)
    b = optimal_time_lower_bound(taus, L=1.0, delta=2.0, sigma=1.0, eps=0.01)
    assert (a.m, a.harmonic_mean) == (b.m, b.harmonic_mean)
    assert a.values == pytest.approx(b.values, rel=1e-12)


# --- fixed computation model: rate and delays ----------------------------------


@pytest.mark.parametrize(
    ("D", "rate", "fast", "slow"), [(4.0, 10.0, 9.0, 39.0), (8.0, 9.0, 8.0, 71.0)]
)
def test_two_speed_reference_values(
    D: float, rate: float, fast: float, slow: float
) -> None:
    r = two_speed_delays(8, 8, D)
    assert r.num_workers == 16
    assert r.update_rate == pytest.approx(rate)
    assert r.mean_time_per_update == pytest.approx(1.0 / rate)
    assert r.mean_delay == 15.0
    assert r.fast_mean_delay == pytest.approx(fast)
    assert r.slow_mean_delay == pytest.approx(slow)  # = 8D + 7
    assert fixed_model_update_rate([1.0] * 8 + [D] * 8) == pytest.approx(rate)


def simulate_alg1_delays(taus: list[float], horizon: float) -> list[list[int]]:
    """Event loop of Algorithm 1 with fixed times; ties broken by worker id."""
    version = 0
    dispatched = [0] * len(taus)
    heap = [(tau, i) for i, tau in enumerate(taus)]
    heapq.heapify(heap)
    delays: list[list[int]] = [[] for _ in taus]
    while heap[0][0] <= horizon:
        t, i = heapq.heappop(heap)
        delays[i].append(version - dispatched[i])
        version += 1
        dispatched[i] = version
        heapq.heappush(heap, (t + taus[i], i))
    return delays


def test_two_speed_delays_match_an_event_loop() -> None:
    taus = [1.0] * 8 + [4.0] * 8
    delays = simulate_alg1_delays(taus, horizon=400.0)
    everything = [d for per_worker in delays for d in per_worker]
    ref = two_speed_delays(8, 8, 4.0)
    assert np.mean(everything) == pytest.approx(ref.mean_delay, abs=0.1)
    assert np.mean(delays[0]) == pytest.approx(ref.fast_mean_delay, abs=0.1)
    assert np.mean(delays[-1]) == pytest.approx(ref.slow_mean_delay, abs=0.5)
    np.testing.assert_allclose(
        [np.mean(d) for d in delays], fixed_model_mean_delays(taus), atol=0.5
    )


def test_mean_delay_is_n_minus_one_for_any_times() -> None:
    taus = np.random.default_rng(1).uniform(0.5, 7.0, size=13)
    per_worker = fixed_model_mean_delays(taus)
    share = (1.0 / taus) / np.sum(1.0 / taus)
    assert float(share @ per_worker) == pytest.approx(12.0)


# --- iteration complexities ---------------------------------------------------


@pytest.mark.parametrize("theta", [0.25, 0.5, 1.0, 2.0, 2.71])
def test_k_theta_bounds_the_second_moment_of_the_sub_weibull_model(
    theta: float,
) -> None:
    # X = s E^θ has σ = 2^θ s and E X² = s² Γ(2θ + 1).
    second_moment_over_sigma2 = math.gamma(2 * theta + 1) / 4.0**theta
    assert second_moment_over_sigma2 <= sub_weibull_second_moment_constant(theta)


def test_clipped_parameters_without_noise() -> None:
    # σ = ζ = 0: W = 0, q = 1, c = ε, R = ε², η = min(1/(KτL), 1/(KL), 1/(KτL)).
    a = clipped_asgd_parameters(
        L=2.0, delta=3.0, sigma=0.0, theta=1.0, eps=0.5, concurrency=4, K=16.0
    )
    assert a.max_norm == 0.5
    assert a.stepsize == pytest.approx(1.0 / (16 * 4 * 2.0))
    assert a.num_updates == math.ceil(16 * 4.0 / (a.stepsize * 0.25)) + 4 + 1
    assert a.rate_terms == pytest.approx((0.0, 0.0, 4 * 6.0 / 0.25))
    assert not a.high_probability


def test_clipped_parameters_follow_the_audit_construction() -> None:
    L, delta, sigma, theta, eps, tau_c, K = 1.0, 1.0, 1.0, 1.0, 0.1, 16, 16.0
    a = clipped_asgd_parameters(
        L=L, delta=delta, sigma=sigma, theta=theta, eps=eps, concurrency=tau_c, K=K
    )
    k_theta = 2.0 * (2.0 / math.e) ** 2
    W = k_theta
    q = math.log(2 + K * W / eps**2)
    c = eps + 4 * q + math.sqrt(8 * W)
    R = eps**2 + q**2
    eta = min(1 / (K * tau_c * L), eps**2 / (K * L * R), eps / (K * c * tau_c * L))
    assert (a.K_theta, a.W, a.q, a.R) == pytest.approx((k_theta, W, q, R))
    assert a.max_norm == pytest.approx(c)
    assert a.stepsize == pytest.approx(eta)
    assert a.stepsize_regime == "noise"
    assert a.num_updates == math.ceil(K * 2.0 / (eta * eps**2)) + tau_c + 1
    # The guarantees' preconditions: c >= ε and c² >= 8W.
    assert a.max_norm >= eps and a.max_norm**2 >= 8 * a.W


def test_high_probability_variant_inflates_c_by_log_t_over_delta() -> None:
    common: dict[str, Any] = dict(
        L=1.0, delta=1.0, sigma=1.0, theta=2.0, eps=0.1, concurrency=16
    )
    exp = clipped_asgd_parameters(**common)
    hp = clipped_asgd_parameters(**common, delta_prob=1e-3)
    assert hp.high_probability and (exp.theorem, hp.theorem) == ("4.2", "4.3")
    het = clipped_asgd_parameters(**common, zeta=0.5, delta_prob=1e-3)
    assert het.theorem == "5.2" and het.max_norm > hp.max_norm
    assert hp.max_norm > exp.max_norm and hp.num_updates > exp.num_updates
    # Fixed point: q = max(q_expectation, log(T/δ)^θ) with the returned T.
    assert hp.q == pytest.approx(max(exp.q, math.log(hp.num_updates / 1e-3) ** 2.0))
    log_inv = math.log(1e3)
    assert hp.rate_terms[0] == pytest.approx(exp.rate_terms[0] * log_inv**4)
    assert hp.rate_terms[1] == pytest.approx(exp.rate_terms[1] * log_inv**2)
    assert hp.rate_terms[2] == exp.rate_terms[2]


def test_clipped_stepsize_depends_on_concurrency_not_on_delays() -> None:
    small = clipped_asgd_parameters(
        L=1.0, delta=1.0, sigma=0.1, theta=0.5, eps=0.1, concurrency=4
    )
    large = clipped_asgd_parameters(
        L=1.0, delta=1.0, sigma=0.1, theta=0.5, eps=0.1, concurrency=64
    )
    assert large.stepsize < small.stepsize
    assert large.num_updates > small.num_updates


def test_baseline_rates() -> None:
    kw: dict[str, Any] = dict(L=2.0, delta=3.0, sigma=0.5, eps=0.1)
    vanilla = vanilla_asgd_updates(**kw, max_delay=71)
    assert vanilla == pytest.approx(6.0 * (0.25 / 1e-4 + 71 / 1e-2))
    sharper = vanilla_asgd_updates(**kw, max_delay=71, mean_delay=15)
    assert sharper == pytest.approx(6.0 * (0.25 / 1e-4 + math.sqrt(71 * 15) / 1e-2))
    adaptive = delay_adaptive_asgd_updates(**kw, concurrency=16)
    assert adaptive == pytest.approx(6.0 * (0.25 / 1e-4 + 16 / 1e-2))
    assert adaptive < sharper < vanilla
    # No delay: the SGD term LΔ/ε² stays.
    no_delay = vanilla_asgd_updates(**kw, max_delay=0)
    assert no_delay == pytest.approx(6.0 * (0.25 / 1e-4 + 1 / 1e-2))


# --- estimating L and σ -------------------------------------------------------


@pytest.mark.parametrize(
    ("eigenvalues", "expected"),
    [([7.0, 3.0, 1.0, 0.5, 0.1], 7.0), ([-9.0, 2.0, 1.0, 4.0], 9.0)],
)
def test_power_iteration_recovers_the_largest_eigenvalue(
    eigenvalues: list[float], expected: float
) -> None:
    problem = Quadratic(rotated(eigenvalues, seed=2))
    x = np.linspace(-1.0, 2.0, len(eigenvalues))
    x_before = x.copy()
    estimate = estimate_smoothness(problem, x, np.random.default_rng(3), iters=200)
    assert estimate == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(x, x_before)


def test_estimate_noise_sigma_on_sub_weibull_noise() -> None:
    problem = Quadratic(np.eye(3), theta=1.0, scale=0.5)
    est = estimate_noise_sigma(
        problem, problem.initial_point(), np.random.default_rng(4), 20_000
    )
    assert est.rms == pytest.approx(0.5 * math.sqrt(2.0), rel=0.05)  # Γ(3) = 2
    assert abs(est.theta - 1.0) <= 0.25  # k = 200: θ̂/θ sd ≈ 0.07
    assert est.sigma == pytest.approx(est.fit.sigma)


# --- bad inputs (data-driven) ---------------------------------------------------

GOOD_CLIPPED: dict[str, Any] = dict(
    L=1.0, delta=1.0, sigma=1.0, theta=1.0, eps=0.1, concurrency=4
)

BAD_INPUTS: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any], str]] = [
    (
        optimal_time_lower_bound,
        ([],),
        dict(L=1, delta=1, sigma=1, eps=1),
        "compute_times",
    ),
    (
        optimal_time_lower_bound,
        ([1.0, 0.0],),
        dict(L=1, delta=1, sigma=1, eps=1),
        "compute_times",
    ),
    (
        optimal_time_lower_bound,
        ([1.0],),
        dict(L=-1.0, delta=1, sigma=1, eps=1),
        "L must be positive, got -1.0",
    ),
    (
        optimal_time_lower_bound,
        ([1.0],),
        dict(L=1, delta=1, sigma=1, eps=0.0),
        "eps must be positive",
    ),
    (fixed_model_update_rate, ([float("inf")],), {}, "compute_times"),
    (two_speed_delays, (0, 8, 4.0), {}, "num_fast must be a positive integer"),
    (two_speed_delays, (8, 8, -1.0), {}, "D must be positive"),
    (clipped_asgd_parameters, (), {**GOOD_CLIPPED, "theta": 0.0}, "theta"),
    (clipped_asgd_parameters, (), {**GOOD_CLIPPED, "sigma": -1.0}, "sigma"),
    (clipped_asgd_parameters, (), {**GOOD_CLIPPED, "concurrency": 0}, "concurrency"),
    (clipped_asgd_parameters, (), {**GOOD_CLIPPED, "concurrency": 2.0}, "integer"),
    (clipped_asgd_parameters, (), {**GOOD_CLIPPED, "delta_prob": 1.5}, "delta_prob"),
    (clipped_asgd_parameters, (), {**GOOD_CLIPPED, "K": 0.5}, "K must be at least"),
    (clipped_asgd_parameters, (), {**GOOD_CLIPPED, "eps": float("nan")}, "eps"),
    (
        vanilla_asgd_updates,
        (),
        dict(L=1, delta=1, sigma=1, eps=0.1, max_delay=2, mean_delay=3),
        "mean_delay must not exceed",
    ),
]


@pytest.mark.parametrize(("fn", "args", "kwargs", "pattern"), BAD_INPUTS)
def test_bad_inputs_raise_config_error(
    fn: Callable[..., object],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    pattern: str,
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        fn(*args, **kwargs)


def test_estimators_reject_bad_settings() -> None:
    problem = Quadratic(np.eye(2))
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="iters"):
        estimate_smoothness(problem, np.ones(2), rng, iters=0)
    with pytest.raises(ConfigError, match="step"):
        estimate_smoothness(problem, np.ones(2), rng, step=-1.0)
    with pytest.raises(ConfigError, match="num_samples"):
        estimate_noise_sigma(problem, np.ones(2), rng, 0)
