"""Thesis-level behaviour of clipped and vanilla ASGD on a noisy quadratic, measured
with the engine and the simulator (Erickson & Johansson 2026, arXiv 2606.13287:
clipping removes the maximum delay τ_max from the oracle complexity, leaving the
concurrency τ_C; Theorems 4.2–4.3).

Setting. f(x) = (L/2)‖x‖² in d = 10 with L = 1, stochastic gradients
g = Lx + ξ, ξ ~ N(0, σ²I), σ = 0.1, x_0 = (3, …, 3) (f(x_0) = 45), and the
straggler pool of the issue: 15 workers at time 1 and one at time D, jobs assigned
to the worker that returned (Algorithm 1). The concurrency is τ_C = 16 jobs in
flight at every D; the fast workers' gradients arrive with delay 14 (15 when the
slow one lands in between); the slow worker's with delay ≈ 15·D, so D = 4 → 256
grows τ_max from 60 to ≈ 3,840 (64×) at a nearly fixed throughput (15 + 1/D
updates per time unit).

What the tests pin down (each would fail if the behaviour were absent):

(a) Clipped ASGD's updates to a robust target (the first evaluation after which
    the loss stays at or below the target up to the horizon, D + 100 time units,
    which spans the straggler's first arrival) do not grow with τ_max: at γ = 0.05,
    c = 2 (so no update is longer than γc = 0.1), measured 135–137 updates for
    D = 4 … 256 (a factor 1.015); the test allows 1.25.
    Vanilla ASGD at the same γ does grow: the straggler's first gradient, taken at
    x_0, lands after ≈ 15·D updates and moves x by γ(Lx_0 + ξ), putting the loss
    back at ≈ (L/2)γ²L²‖x_0‖² = 0.11 > target; so its robust hit comes after
    update 15·D (measured 106 at D = 4, 496 at D = 32, 3,856 at D = 256: 36×).
    First hits do not show it: vanilla's are 60 updates at every D ≥ 16, reached
    before the straggler returns (clipped's are its robust hits, 135–137). So on
    this problem clipping pays off only in the robust score and only once D is
    large: at D = 4 vanilla's robust hit (106) beats clipped's (137).

(b) Vanilla ASGD's divergence at a fixed γ is set by the fast workers' delay, i.e.
    by τ_C, not by τ_max. The delayed recursion x_{k+1} = x_k − a·x_{k−τ}
    (a = γL; one eigendirection of the quadratic with every gradient τ updates
    stale) is asymptotically stable iff

        0 < a < a*(τ) = 2·sin(π / (2(2τ + 1)))      (Levin & May 1976),

    the roots of λ^{τ+1} − λ^τ + a lying inside the unit circle; a*(τ)·τ rises from
    1 (τ = 1) to π/2 (τ → ∞), so "diverges once γLτ > 1" is exact only for τ = 1.
    With n identical workers every gradient has delay n − 1 (τ_max = τ_C − 1) and
    the engine's iterates are that recursion exactly. In the straggler pool the
    fast delays are 14–15, so a*(15) = 0.1013 <= threshold <= a*(14) = 0.1083 at
    every D: γ = 0.09 converges at D = 4 and at D = 256, where γLτ_max ≈ 345, and
    γ = 0.13 diverges at both. The prediction that vanilla ASGD diverges once
    γ·L·τ_max > 1 at fixed τ_C does not hold here: a single stale gradient moves x
    by at most γL‖x_old − x*‖ < ‖x_old − x*‖ (γL < 1), and only ~τ_C gradients are
    in flight at once.

(c) Clipped ASGD (c = 0.3) at γ = 0.13, where vanilla diverges, stays in a
    bounded cycle whose size does not depend on τ_max: every update has norm
    <= γc, and when x crosses the optimum at most the τ_C jobs in flight still
    push the old way, so ‖x‖ stays O(τ_C·γc) (the staleness term ηcτ_C of the
    paper's analysis). Measured: loss over the second half <= 0.055 at D = 4 and
    256, i.e. ‖x‖ ≈ 8.5·γc; the test allows (L/2)(τ_C·γc)² = 0.195.
    Normalised SGD at the same effective step γ·c (the c → 0 limit) does the same.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, run
from clipasync.policies import AsyncSGD
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import GradientTransform, chain, clip_by_norm, scale
from clipasync.transforms.normalize import normalize

L = 1.0
DIM = 10
SIGMA = 0.1
X0 = np.full(DIM, 3.0)
FAST, FAST_TIME = 15, 1.0
TAU_C = FAST + 1


def noisy_gradient(worker: int, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    del worker
    return L * x + SIGMA * rng.standard_normal(DIM)


def loss(x: np.ndarray) -> dict[str, float]:
    return {"loss": 0.5 * L * float(x @ x)}


def straggler_run(
    transform: GradientTransform, slow_time: float, seed: int, horizon: float
) -> RunResult:
    """15 workers at time 1 and one at ``slow_time``, until ``slow_time + horizon``."""
    pool = SimulatedPool(
        FixedTimes((FAST_TIME,) * FAST + (float(slow_time),)), noisy_gradient, seed
    )
    return run(
        AsyncSGD(transform),
        pool,
        X0.copy(),
        stop=StopRule(max_time=slow_time + horizon),
        rng=np.random.default_rng(seed),
        evaluate=loss,
        eval_every=1.0,
    )


def tau_max(result: RunResult) -> int:
    return int(max(result.recorder.arrivals["delay"]))


def robust_updates(result: RunResult, target: float) -> float | None:
    """Updates at the first evaluation after which every evaluation is <= target."""
    hit: float | None = None
    for row in result.recorder.evals:
        if row["loss"] <= target:
            hit = row["version"] if hit is None else hit
        else:
            hit = None
    return hit


def first_updates(result: RunResult, target: float) -> float | None:
    return next(
        (r["version"] for r in result.recorder.evals if r["loss"] <= target), None
    )


def late_max_loss(result: RunResult) -> float:
    losses = [r["loss"] for r in result.recorder.evals]
    return max(losses[len(losses) // 2 :])


# ---------------------------------------------------------------------------
# (a) Updates to target as τ_max grows 64× at fixed τ_C.

TARGET = 0.02
GAMMA_A, CLIP_A = 0.05, 2.0
SLOW_TIMES = (4.0, 32.0, 256.0)
SEEDS = (0, 1)


def test_clipped_updates_to_target_stay_flat_as_tau_max_grows_64x() -> None:
    clipped = chain(clip_by_norm(CLIP_A), scale(GAMMA_A))
    vanilla = scale(GAMMA_A)
    clip_hits, van_hits, van_first, taus = {}, {}, {}, {}
    for D in SLOW_TIMES:
        c_runs = [straggler_run(clipped, D, s, 100.0) for s in SEEDS]
        v_runs = [straggler_run(vanilla, D, s, 100.0) for s in SEEDS]
        clip_hits[D] = float(np.median([robust_updates(r, TARGET) for r in c_runs]))
        van_hits[D] = float(np.median([robust_updates(r, TARGET) for r in v_runs]))
        van_first[D] = float(np.median([first_updates(r, TARGET) for r in v_runs]))
        taus[D] = tau_max(c_runs[0])
    # τ_max grows ~64× (60 → ~3,840) while τ_C = 16 jobs stay in flight.
    assert taus[4.0] == 60 and taus[256.0] >= 60 * 63
    # Clipped: within 1.25× over the whole range (measured 1.015×).
    hits = list(clip_hits.values())
    assert max(hits) / min(hits) <= 1.25, clip_hits
    # Vanilla at the same γ: the straggler's stale gradient at x_0 puts the loss
    # back above the target after ≈ 15·D updates, so its robust hit comes later.
    for D in SLOW_TIMES:
        assert van_hits[D] >= FAST * D, van_hits
    assert van_hits[256.0] / van_hits[4.0] >= 16, van_hits
    # ... while its first hit is flat, reached before the straggler returns.
    assert van_first[32.0] == van_first[256.0] < FAST * 32


# ---------------------------------------------------------------------------
# (b) Where vanilla ASGD diverges: the delayed recursion and the straggler pool.


def stability_threshold(tau: int) -> float:
    """a*(τ) = 2 sin(π/(2(2τ+1))): x_{k+1} = x_k − a x_{k−τ} is stable iff a < a*."""
    return 2.0 * math.sin(math.pi / (2.0 * (2 * tau + 1)))


def spectral_radius(a: float, tau: int) -> float:
    """Largest |λ| of λ^{τ+1} − λ^τ + a = 0 (the recursion's characteristic roots)."""
    coeffs = np.zeros(tau + 2)
    coeffs[0], coeffs[1], coeffs[-1] = 1.0, -1.0, a
    return float(np.max(np.abs(np.roots(coeffs))))


@pytest.mark.parametrize("tau", [1, 2, 5, 14, 15, 60])
def test_the_delayed_recursion_is_stable_exactly_below_the_threshold(tau: int) -> None:
    a_star = stability_threshold(tau)
    assert (
        spectral_radius(0.99 * a_star, tau) < 1.0 < spectral_radius(1.01 * a_star, tau)
    )
    # a*·τ is 1 at τ = 1 and rises towards π/2, never reaching it.
    assert 1.0 - 1e-12 <= a_star * tau < math.pi / 2
    if tau > 1:
        assert a_star * tau > stability_threshold(tau - 1) * (tau - 1)


def test_identical_workers_run_the_delayed_recursion_and_its_threshold() -> None:
    n = 16  # every gradient has delay τ = n − 1 = 15
    tau = n - 1
    a_star = stability_threshold(tau)  # 0.1013

    def exact(worker: int, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return L * x

    def simulate(gamma: float, updates: int) -> RunResult:
        pool = SimulatedPool(FixedTimes((1.0,) * n), exact, 0)
        return run(
            AsyncSGD(scale(gamma)),
            pool,
            np.array([1.0]),
            stop=StopRule(max_updates=updates),
            rng=np.random.default_rng(0),
            evaluate=loss,
            eval_every=1.0,
        )

    # The engine's iterates are the recursion with history x_{-τ..0} = x_0, bit for bit.
    gamma = 0.9 * a_star
    xs = [1.0] * (tau + 1)
    for _ in range(400):
        xs.append(xs[-1] - xs[-1 - tau] * (gamma * L))
    result = simulate(gamma, 400)
    assert set(result.recorder.arrivals["delay"][n:]) == {tau}
    assert float(result.params[0]) == xs[-1]
    # Below a*: converges although γLτ = 1.37 > 1; above: diverges.
    assert gamma * L * tau > 1.3
    assert loss(simulate(0.9 * a_star, 4000).params)["loss"] < 1e-6
    assert simulate(1.1 * a_star, 20_000).stop_reason == "diverged"


def test_vanilla_threshold_is_set_by_tau_c_not_tau_max() -> None:
    low, high = 0.09, 0.13  # a*(15) = 0.1013 and a*(14) = 0.1083 lie between
    assert low < stability_threshold(15) < stability_threshold(14) < high
    for D in (4.0, 256.0):
        calm = straggler_run(scale(low), D, 0, 300.0)
        assert calm.stop_reason == "max_time"
        assert late_max_loss(calm) < 0.1  # from 45: at its noise floor
        arrivals = calm.recorder.arrival_arrays()
        fast = arrivals["delay"][arrivals["worker"] < FAST][FAST:]  # after x_0's batch
        assert set(fast.tolist()) == {14, 15}
        if D == 256.0:
            # γ·L·τ_max ≈ 345: far beyond 1, yet no divergence.
            assert low * L * tau_max(calm) > 300
        wild = straggler_run(scale(high), D, 0, 300.0)
        assert wild.stop_reason == "diverged"
        assert wild.version < FAST * 256  # before the straggler at D = 256 returns


# ---------------------------------------------------------------------------
# (c) Clipping at the stepsize where vanilla diverges.


@pytest.mark.parametrize("method", ["clipped", "normalized"])
def test_clipped_does_not_diverge_where_vanilla_does(method: str) -> None:
    gamma, c = 0.13, 0.3
    transform = (
        chain(clip_by_norm(c), scale(gamma))
        if method == "clipped"
        else chain(normalize(), scale(gamma * c))
    )
    bound = 0.5 * L * (TAU_C * gamma * c) ** 2  # 0.195
    sizes = {}
    for D in (4.0, 256.0):
        result = straggler_run(transform, D, 0, 300.0)
        assert result.stop_reason == "max_time"
        assert result.counts["applied"] > FAST * (D + 299)
        sizes[D] = late_max_loss(result)
        assert sizes[D] <= bound, sizes
    # The cycle's size does not follow τ_max (60 → 3,840): within 2×.
    assert max(sizes.values()) <= 2 * min(sizes.values()), sizes
    assert straggler_run(scale(gamma), 256.0, 0, 300.0).stop_reason == "diverged"
