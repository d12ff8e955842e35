"""Asynchronous SGD with server momentum (heavy ball, Nesterov) and DC-ASGD, each with
and without clipping: hand trajectories and degenerate equivalences. Also: every new
method counts and skips non-finite payloads.

The hand cases are those of test_policies.py: f(x) = ½x₁² + x₂², ∇f = (x₁, 2x₂),
x₀ = (1, 1), γ = ½, fixed times (1, 2, 3), so the arrivals are t=1 w0 at x0, t=2 w1
at x0 (started first), t=2 w0 at x1, ...
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.dc_asgd import DelayCompensated
from clipasync.policies.fedavg import FedAvg
from clipasync.policies.malenia import Malenia
from clipasync.policies.msync import MSync
from clipasync.policies.params import AsyncMomentumParams, DCASGDParams
from clipasync.policies.registry import build
from clipasync.policies.ringleader import Ringleader
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes, random_times
from clipasync.transforms import chain, clip_by_norm, scale
from clipasync.transforms.chains import momentum_sgd
from tests.conftest import (
    diag_quadratic_grad,
    noisy_quadratic_grad,
    params_after_each_update,
)

X0 = np.array([1.0, 1.0])
TIMES = (1.0, 2.0, 3.0)
S5 = math.sqrt(5.0)


def trajectory(policy: Any, updates: int) -> RunResult:
    pool = SimulatedPool(FixedTimes(TIMES), diag_quadratic_grad, seed=0)
    return run(
        policy,
        pool,
        X0,
        stop=StopRule(max_updates=updates),
        rng=np.random.default_rng(0),
    )


def noisy_run(policy: Any, updates: int = 200) -> RunResult:
    pool = SimulatedPool(random_times("exponential", 1.0, 5), noisy_quadratic_grad, 3)
    return run(
        policy,
        pool,
        np.full(4, 3.0),
        stop=StopRule(max_updates=updates),
        rng=stream(3, Stream.POLICY),
    )


# ---------------------------------------------------------------- server momentum


def test_heavy_ball_hand_trajectory():
    # β = ½, m ← β m + g, x ← x − γ m. g=(1,2): m=(1,2), x1=(0.5,0). g=(1,2) (w1 at
    # x0): m=(1.5,3), x2=(−0.25,−1.5). g=∇f(x1)=(0.5,0): m=(1.25,1.5),
    # x3=(−0.875,−2.25).
    policy = build(
        "async_momentum", AsyncMomentumParams(stepsize=0.5, server_momentum=0.5)
    )
    res = trajectory(policy, 3)
    np.testing.assert_array_equal(res.params, [-0.875, -2.25])


def test_nesterov_hand_trajectory():
    # u = g + β m_new. g=(1,2): m=(1,2), u=(1.5,3), x1=(0.25,−0.5). g=(1,2): m=(1.5,3),
    # u=(1.75,3.5), x2=(−0.625,−2.25). g=∇f(x1)=(0.25,−1): m=(1,0.5), u=(0.75,−0.75),
    # x3=(−1,−1.875).
    params = AsyncMomentumParams(stepsize=0.5, server_momentum=0.5, nesterov=True)
    res = trajectory(build("async_momentum", params), 3)
    np.testing.assert_array_equal(res.params, [-1.0, -1.875])


def test_clipped_heavy_ball_clips_the_gradient_before_the_buffer():
    # c = 1: v = (1,2)/√5 enters m twice: m1 = v, m2 = 1.5 v; x2 = x0 − ½(v + 1.5 v).
    params = AsyncMomentumParams(stepsize=0.5, max_norm=1.0, server_momentum=0.5)
    res = trajectory(build("async_momentum", params), 2)
    v = np.array([1.0, 2.0]) / S5
    np.testing.assert_allclose(res.params, X0 - 1.25 * v, rtol=1e-15)
    a = res.recorder.arrival_arrays()
    np.testing.assert_allclose(a["pre_clip_norm"], [S5, S5])
    assert a["clipped"].tolist() == [1.0, 1.0]
    # ‖m‖ <= c/(1 − β), so each update is at most γ c/(1 − β) long, whatever the
    # delays (and the bound is nearly reached while the gradients are aligned).
    pool = SimulatedPool(random_times("exponential", 1.0, 5), noisy_quadratic_grad, 3)
    policy = AsyncSGD(momentum_sgd(0.5, 0.5, max_norm=0.2))
    xs = np.array(params_after_each_update(policy, pool, np.full(4, 30.0), 300))
    steps = np.linalg.norm(np.diff(xs, axis=0), axis=1)
    assert steps.max() <= 0.5 * 0.2 / 0.5 * (1 + 1e-12)
    assert steps.max() >= 0.9 * 0.5 * 0.2 / 0.5


def test_zero_momentum_is_asynchronous_sgd_bit_for_bit():
    for nesterov in (False, True):
        a = noisy_run(AsyncSGD(momentum_sgd(0.05, 0.0, nesterov=nesterov)))
        b = noisy_run(AsyncSGD(scale(0.05)))
        assert a.params.tobytes() == b.params.tobytes()
    c = noisy_run(AsyncSGD(momentum_sgd(0.05, 0.0, max_norm=1.0)))
    d = noisy_run(AsyncSGD(chain(clip_by_norm(1.0), scale(0.05))))
    assert c.params.tobytes() == d.params.tobytes()


# ------------------------------------------------------------------------ DC-ASGD


def test_dc_asgd_hand_trajectory():
    # λ = 1, g̃ = g + g⊙g⊙(x_k − x_v). t=1 w0 at x0: no drift, x1 = (0.5, 0).
    # t=2 w1 at x0: g=(1,2), x1 − x0 = (−0.5,−1): g̃ = (1,2) + (1,4)⊙(−0.5,−1) =
    # (0.5,−2), x2 = (0.25, 1). t=2 w0 at x1 (its backup): g=(0.5,0), x2 − x1 =
    # (−0.25, 1): g̃ = (0.4375, 0), x3 = (0.03125, 1).
    res = trajectory(DelayCompensated(scale(0.5), compensation=1.0), 3)
    np.testing.assert_array_equal(res.params, [0.03125, 1.0])
    a = res.recorder.arrival_arrays()
    np.testing.assert_allclose(a["pre_clip_norm"], [S5, math.sqrt(4.25), 0.4375])


def test_clipped_dc_asgd_clips_the_compensated_gradient():
    params = DCASGDParams(stepsize=0.5, max_norm=1.0, compensation=1.0)
    res = trajectory(build("dc_asgd", params), 2)
    g = np.array([1.0, 2.0])
    x1 = X0 - 0.5 * g / S5
    comp = g + g * g * (x1 - X0)  # w1's g = (1, 2) at x0, compensated: ‖g̃‖ ≈ 0.80
    assert np.linalg.norm(comp) < 1.0 < np.linalg.norm(g)
    x2 = x1 - 0.5 * comp  # g̃ is below c: not clipped (g itself would have been)
    np.testing.assert_allclose(res.params, x2, rtol=1e-15)
    a = res.recorder.arrival_arrays()
    np.testing.assert_allclose(a["pre_clip_norm"], [S5, np.linalg.norm(comp)])
    assert a["clipped"].tolist() == [1.0, 0.0]


def test_dc_asgd_without_compensation_is_asynchronous_sgd_bit_for_bit():
    a = noisy_run(DelayCompensated(chain(clip_by_norm(1.0), scale(0.05)), 0.0))
    b = noisy_run(AsyncSGD(chain(clip_by_norm(1.0), scale(0.05))))
    assert a.params.tobytes() == b.params.tobytes()
    c = noisy_run(DelayCompensated(scale(0.05), 0.5))
    assert c.params.tobytes() != b.params.tobytes()


def test_dc_asgd_rejects_a_negative_compensation():
    with pytest.raises(ConfigError, match="compensation"):
        DelayCompensated(scale(0.1), -1.0)


# --------------------------------------------------------- non-finite payloads


def nan_every_third(worker: int, x: np.ndarray, rng: np.random.Generator) -> Any:
    nan_every_third.calls += 1  # type: ignore[attr-defined]
    g = 0.1 * x + rng.standard_normal(x.shape)
    if nan_every_third.calls % 3 == 0:  # type: ignore[attr-defined]
        g[0] = np.nan
    return g


@pytest.mark.parametrize(
    "policy",
    [
        Ringleader(scale(0.05)),
        Malenia(scale(0.05), batch_size=4),
        MSync(scale(0.05), quorum=3),
        FedAvg(scale(0.05)),
        AsyncSGD(momentum_sgd(0.05, 0.5, nesterov=True)),
        DelayCompensated(scale(0.05), 0.5),
    ],
    ids=lambda p: p.name,
)
def test_nonfinite_payloads_are_counted_and_skipped(policy: Any) -> None:
    nan_every_third.calls = 0  # type: ignore[attr-defined]
    pool = SimulatedPool(FixedTimes((1.0, 1.3, 1.7, 2.9)), nan_every_third, seed=0)
    res = run(
        policy,
        pool,
        np.ones(3),
        stop=StopRule(max_arrivals=120),
        rng=np.random.default_rng(0),
    )
    assert np.isfinite(res.params).all()
    assert res.counts["applied"] > 0
    skipped = res.recorder.arrival_arrays()["skipped"]
    assert skipped.sum() == res.counts["skipped"]
    # 40 of the 120 arrivals are NaN; only a late (discarded) job is not inspected.
    c = res.counts
    assert c["skipped"] + c["discarded"] >= 40 >= c["skipped"] > 0
    if c["discarded"] == 0:
        assert c["skipped"] == 40
