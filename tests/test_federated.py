"""Federated learning: partitions, local training, FedAsync, FedBuff, availability.

Problems are heterogeneous quadratics f_i(x) = ½‖x − c_i‖² (client i's optimum is
c_i), with optional Gaussian oracle noise, so every expected value is easy to write.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError, WorkerFailed
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.fedasync import FedAsync
from clipasync.policies.fedbuff import FedBuff
from clipasync.policies.staleness import (
    ConstantStaleness,
    HingeStaleness,
    PolynomialStaleness,
    make_staleness,
)
from clipasync.problems.local_training import local_sgd_task
from clipasync.problems.partition import (
    dirichlet_label_partition,
    natural_partition,
    shard_partition,
)
from clipasync.seeding import Stream, stream
from clipasync.sim import (
    BernoulliDropout,
    OpenSystemPool,
    PeriodicOffline,
    ScriptedDropout,
    SimulatedPool,
    UnreliablePool,
    make_dropout,
)
from clipasync.timing import ExponentialTimes, FixedTimes, LogNormalTimes, TraceTimes
from clipasync.transforms import chain, clip_by_norm, identity, scale
from clipasync.transforms.momentum import momentum
from clipasync.types import Arrival, UpdateContext, Vector


class HeteroQuadratic:
    """f_i(x) = ½‖x − c_i‖²; ∇F_i(x; ξ) = x − c_i + σ ξ with ξ ~ N(0, I)."""

    def __init__(self, centers: np.ndarray, noise: float = 0.0) -> None:
        self.centers = np.asarray(centers, dtype=np.float64)
        self.noise = noise

    def stochastic_grad(
        self, x: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        assert worker is not None
        g = x - self.centers[worker]
        if self.noise:
            g = g + self.noise * rng.standard_normal(x.shape)
        return g

    def grad_task(self, worker: int, x: Vector, rng: np.random.Generator) -> Vector:
        """One stochastic gradient as a job (for AsyncSGD)."""
        return self.stochastic_grad(x, rng, worker=worker)


def centers(n: int, dim: int = 3, seed: int = 7, spread: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=spread, size=(n, dim))


def const_task(payloads: dict[int, Vector]) -> Any:
    """A job returning a fixed vector per worker (ignores x): for hand values."""

    def task(worker: int, x: Vector, rng: np.random.Generator) -> Vector:
        del x, rng
        return payloads[worker]

    return task


def params_after_each_update(policy: Any, pool: Any, x0: Vector, num: int) -> list[Any]:
    """Drive ``policy`` like the engine and return x after every applied update."""
    state = policy.init(x0, pool.num_workers, np.random.default_rng(0))
    for w in policy.start(state):
        pool.submit(w, policy.params(state), policy.version(state))
    out = [policy.params(state)]
    while len(out) <= num:
        state, reply = policy.on_arrival(state, pool.next_arrival())
        if reply.applied:
            out.append(policy.params(state))
        for w in reply.dispatch:
            pool.submit(w, policy.params(state), policy.version(state))
    return out


# ------------------------------------------------------------------ partitions


def assert_exact_cover(parts: list[np.ndarray], n: int, min_size: int) -> None:
    allidx = np.concatenate(parts)
    assert allidx.shape[0] == n
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
    assert min(p.shape[0] for p in parts) >= min_size
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partitioners_cover_every_sample_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=1000)
    parts = dirichlet_label_partition(labels, 16, alpha=0.5, min_size=20, rng=rng)
    assert len(parts) == 16
    assert_exact_cover(parts, 1000, 20)
    parts = shard_partition(labels, 20, classes_per_client=2, rng=rng, min_size=40)
    assert len(parts) == 20
    assert_exact_cover(parts, 1000, 40)
    groups = rng.choice(np.array(["AA", "DL", "UA", "B6", "WN"]), size=1000)
    parts = natural_partition(groups, min_size=50)
    assert len(parts) == 5
    assert_exact_cover(parts, 1000, 50)
    for p in parts:  # one airline per client
        assert np.unique(groups[p]).shape[0] == 1
    parts = natural_partition(groups, num_clients=2, rng=rng)
    assert_exact_cover(parts, 1000, 1)
    owners = {g: i for i, p in enumerate(parts) for g in np.unique(groups[p])}
    assert len(owners) == 5  # no airline split between clients


def test_shard_partition_gives_k_classes() -> None:
    labels = np.repeat(np.arange(10), 30)  # shards never straddle classes
    parts = shard_partition(labels, 10, 2, rng=np.random.default_rng(0))
    assert_exact_cover(parts, 300, 30)
    assert all(np.unique(labels[p]).shape[0] <= 2 for p in parts)
    parts = shard_partition(labels, 10, 1, rng=np.random.default_rng(0))
    assert all(np.unique(labels[p]).shape[0] == 1 for p in parts)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: natural_partition([0, 0, 0, 1]), None),
        (lambda: natural_partition([0, 0, 0, 1], min_size=2), "fewer than min_size=2"),
        (lambda: natural_partition([0, 1], num_clients=3), "cannot give 3 clients"),
        (
            lambda: shard_partition(np.arange(10), 4, 3, np.random.default_rng(0)),
            "12 shards exceed",
        ),
        (
            lambda: shard_partition(
                np.arange(10), 2, 1, np.random.default_rng(0), min_size=6
            ),
            "cannot give 2 clients min_size=6",
        ),
        (
            lambda: shard_partition(np.arange(10), 2, 0, np.random.default_rng(0)),
            "classes_per_client",
        ),
        (
            lambda: dirichlet_label_partition(
                np.repeat([0, 1], 50),
                10,
                alpha=0.01,
                min_size=9,
                max_attempts=3,
                rng=np.random.default_rng(0),
            ),
            "min_size=9",
        ),
    ],
)
def test_partitioners_enforce_min_size(call: Any, match: str | None) -> None:
    if match is None:
        assert [p.tolist() for p in call()] == [[0, 1, 2], [3]]
        return
    with pytest.raises(ConfigError, match=match):
        call()


# ------------------------------------------------------------------- staleness


def test_staleness_hand_values() -> None:
    c = ConstantStaleness()
    assert [c(d) for d in (0, 1, 1000)] == [1.0, 1.0, 1.0]
    p = PolynomialStaleness(0.5)
    assert [p(d) for d in (0, 3, 8)] == [1.0, 0.5, 1.0 / 3.0]
    assert PolynomialStaleness(1.0)(4) == 0.2
    h = HingeStaleness(a=2.0, b=3)
    assert [h(d) for d in (0, 3, 4, 5)] == [1.0, 1.0, 1.0 / 3.0, 0.2]
    assert make_staleness({"kind": "hinge", "a": 2.0, "b": 3}) == h
    with pytest.raises(ValueError, match="delay must be >= 0"):
        p(-1)


def test_make_staleness_polynomial_needs_exponent() -> None:
    assert make_staleness(None) == ConstantStaleness()
    assert make_staleness({"kind": "polynomial", "exponent": 1}) == PolynomialStaleness(
        1
    )
    with pytest.raises(ConfigError, match="bad parameters"):
        make_staleness("polynomial")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: PolynomialStaleness(-1.0), "exponent"),
        (lambda: HingeStaleness(a=0.0, b=1), "slope a"),
        (lambda: HingeStaleness(a=1.0, b=-1), "hinge point b"),
        (lambda: make_staleness({"kind": "exp"}), "unknown staleness kind"),
        (lambda: FedAsync(mixing=0.0), "mixing"),
        (lambda: FedAsync(mixing=1.5), "mixing"),
        (lambda: FedBuff(buffer_size=0, server_transform=scale(1.0)), "buffer_size"),
        (
            lambda: FedBuff(
                buffer_size=2, server_transform=scale(1.0), max_staleness=-1
            ),
            "max_staleness",
        ),
        (
            lambda: FedBuff(1, scale(1.0), assign="fastest"),  # type: ignore[arg-type]
            "assign",
        ),
        (lambda: local_sgd_task(HeteroQuadratic(centers(2)), 0, 0.1), "local_steps"),
        (lambda: local_sgd_task(HeteroQuadratic(centers(2)), 1, 0.0), "local_stepsize"),
        (lambda: local_sgd_task(HeteroQuadratic(centers(2)), 1, 0.1, 0.0), "max_norm"),
        (lambda: momentum(1.0), "beta"),
        (lambda: BernoulliDropout(1.0), "probability"),
        (lambda: PeriodicOffline(10.0, 10.0, (0.0,)), "off_time"),
        (lambda: make_dropout({"kind": "markov"}), "unknown dropout kind"),
        (lambda: OpenSystemPool(FixedTimes((1.0,)), 0.0, None, 0), "rate"),
    ],
)
def test_bad_hyperparameters_raise(build: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


# ---------------------------------------------------------------- local training


def test_local_sgd_task_hand_values_and_no_mutation() -> None:
    prob = HeteroQuadratic(np.array([[4.0, 0.0], [0.0, 2.0]]))
    x = np.array([0.0, 0.0])
    task = local_sgd_task(prob, local_steps=2, local_stepsize=0.5)
    # y1 = 0 − ½(0 − 4) = 2, y2 = 2 − ½(2 − 4) = 3 → Δ = (3, 0).
    np.testing.assert_array_equal(task(0, x, np.random.default_rng(0)), [3.0, 0.0])
    model = local_sgd_task(prob, 2, 0.5, output="model")
    # y1 = 1 − ½(1 − (0, 2)) = (0.5, 1.5), y2 = (0.25, 1.75), returned as x_v + Δ.
    np.testing.assert_array_equal(
        model(1, x + 1.0, np.random.default_rng(0)), [0.25, 1.75]
    )
    np.testing.assert_array_equal(x, [0.0, 0.0])


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 10.0])
def test_client_clipping_bounds_the_delta(max_norm: float) -> None:
    prob = HeteroQuadratic(centers(4), noise=2.0)
    task = local_sgd_task(prob, 5, 0.3, client_max_norm=max_norm)
    free = local_sgd_task(prob, 5, 0.3)
    x = np.ones(3)
    for w in range(4):
        d = task(w, x, np.random.default_rng(w))
        d_free = free(w, x, np.random.default_rng(w))
        assert np.linalg.norm(d) <= max_norm * (1 + 1e-12)
        if np.linalg.norm(d_free) <= max_norm:
            np.testing.assert_array_equal(d, d_free)
        else:  # same direction, norm exactly c
            np.testing.assert_allclose(d, d_free * max_norm / np.linalg.norm(d_free))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nonfinite_delta_passes_through_and_is_skipped() -> None:
    prob = HeteroQuadratic(np.array([[np.inf, 0.0]]))
    task = local_sgd_task(prob, 2, 0.1, client_max_norm=1.0)
    assert not np.all(np.isfinite(task(0, np.zeros(2), np.random.default_rng(0))))
    policy = FedBuff(1, scale(1.0))
    pool = SimulatedPool(FixedTimes((1.0,)), task, seed=0)
    res = run(
        policy,
        pool,
        np.zeros(2),
        stop=StopRule(max_arrivals=3),
        rng=np.random.default_rng(0),
    )
    assert res.counts["skipped"] == 3 and res.version == 0
    np.testing.assert_array_equal(res.params, [0.0, 0.0])


# --------------------------------------------------------------------- FedBuff


@pytest.mark.parametrize("assign", ["same", "random"])
@pytest.mark.parametrize("server_stepsize", [1.0, 0.7])
def test_fedbuff_k1_one_local_step_is_async_sgd(
    assign: Any, server_stepsize: float
) -> None:
    n, eta_l = 5, 0.05
    prob = HeteroQuadratic(centers(n), noise=1.0)
    timing = LogNormalTimes(tuple(1.0 + i for i in range(n)), sigma=1.0)
    stop = StopRule(max_updates=200)
    x0 = np.zeros(3)
    fed = run(
        FedBuff(1, scale(server_stepsize), assign=assign),
        SimulatedPool(timing, local_sgd_task(prob, 1, eta_l), seed=3),
        x0,
        stop=stop,
        rng=stream(3, Stream.POLICY),
    )
    sgd = run(
        AsyncSGD(scale(server_stepsize * eta_l), assign=assign),
        SimulatedPool(timing, prob.grad_task, seed=3),
        x0,
        stop=stop,
        rng=stream(3, Stream.POLICY),
    )
    if server_stepsize == 1.0:  # u = 1·(η_l g) = η_l g: the same floating-point ops
        np.testing.assert_array_equal(fed.params, sgd.params)
    np.testing.assert_allclose(fed.params, sgd.params, rtol=1e-12, atol=1e-12)
    a, b = fed.recorder.arrival_arrays(), sgd.recorder.arrival_arrays()
    for col in ("time", "worker", "delay", "job"):
        np.testing.assert_array_equal(a[col], b[col])
    assert np.linalg.norm(fed.params - x0) > 1.0  # it moved


def test_fedbuff_k1_with_client_clipping_is_clipped_async_sgd() -> None:
    n, eta_l, c = 4, 0.1, 0.05
    prob = HeteroQuadratic(centers(n), noise=1.0)
    timing = ExponentialTimes(tuple(1.0 + i for i in range(n)))
    stop = StopRule(max_updates=150)
    fed = run(
        FedBuff(1, scale(1.0)),
        SimulatedPool(timing, local_sgd_task(prob, 1, eta_l, client_max_norm=c), 1),
        np.zeros(3),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    # clip_c(−η_l g) = −η_l clip_{c/η_l}(g)
    sgd = run(
        AsyncSGD(chain(clip_by_norm(c / eta_l), scale(eta_l))),
        SimulatedPool(timing, prob.grad_task, 1),
        np.zeros(3),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(fed.params, sgd.params, rtol=1e-12, atol=1e-12)


def test_client_clipping_bounds_the_applied_update() -> None:
    # K = 1: ‖x_{k+1} − x_k‖ = η_g ‖Δ‖ ≤ η_g c, whatever the delay or local steps.
    eta_g, c = 0.7, 0.3
    prob = HeteroQuadratic(centers(6), noise=3.0)
    task = local_sgd_task(prob, 4, 0.4, client_max_norm=c)
    pool = SimulatedPool(ExponentialTimes((1.0,) * 3 + (8.0,) * 3), task, seed=5)
    xs = params_after_each_update(FedBuff(1, scale(eta_g)), pool, np.zeros(3), 100)
    steps = np.linalg.norm(np.diff(np.array(xs), axis=0), axis=1)
    assert steps.max() <= eta_g * c * (1 + 1e-12)
    assert steps.max() >= 0.99 * eta_g * c  # clipping was active


def test_fedbuff_hand_trajectory_with_staleness_and_cutoff() -> None:
    # Fixed times (1, 2, 5), deltas d_w that ignore x, K = 2, s = 1/(1+delay),
    # max_staleness = 1 (timeline in the comments; ties go to the earlier start).
    d = {0: np.array([1.0, 0.0]), 1: np.array([0.0, 2.0]), 2: np.array([8.0, 8.0])}
    policy = FedBuff(2, scale(1.0), staleness=PolynomialStaleness(1.0), max_staleness=1)
    pool = SimulatedPool(FixedTimes((1.0, 2.0, 5.0)), const_task(d), seed=0)
    res = run(
        policy,
        pool,
        np.zeros(2),
        stop=StopRule(max_arrivals=7),
        rng=np.random.default_rng(0),
    )
    x1 = (d[0] + d[1]) / 2  # t=1 w0 d0 (delay 0); t=2 w1 d1 (delay 0) → step
    x2 = x1 + (0.5 * d[0] + d[0]) / 2  # t=2 w0@v0 (delay 1); t=3 w0@v1 → step
    x3 = x2 + (0.5 * d[1] + d[0]) / 2  # t=4 w1@v1 (delay 1); t=4 w0@v2 → step
    # t=5: w2@v0 has delay 3 > 1: discarded.
    np.testing.assert_array_equal(res.params, x3)
    assert res.counts == {
        "arrivals": 7,
        "applied": 3,
        "discarded": 1,
        "skipped": 0,
        "cancelled": 0,
    }
    a = res.recorder.arrival_arrays()
    assert a["worker"].tolist() == [0, 1, 0, 0, 1, 0, 2]
    assert a["delay"].tolist() == [0, 0, 1, 0, 1, 0, 3]
    assert a["applied"].tolist() == [False, True, False, True, False, True, False]


def test_fedbuff_server_momentum_hand_values() -> None:
    d = {0: np.array([1.0, -1.0])}
    policy = FedBuff(1, chain(momentum(0.5), scale(2.0)))
    pool = SimulatedPool(FixedTimes((1.0,)), const_task(d), seed=0)
    xs = params_after_each_update(policy, pool, np.zeros(2), 3)
    # ĝ = −d; m = ĝ, 1.5ĝ, 1.75ĝ; x ← x − 2m, so x gains 2d, 3d, 3.5d.
    expected = np.cumsum([2.0, 3.0, 3.5])[:, None] * d[0]
    np.testing.assert_array_equal(np.array(xs[1:]), expected)


def test_momentum_zero_is_identity() -> None:
    ctx = UpdateContext(0, 0, -1, 1)
    g = np.array([1.0, 2.0])
    m = momentum(0.0)
    u, _, _ = m.update(g, m.init(g), ctx)
    v, _, _ = identity().update(g, None, ctx)
    np.testing.assert_array_equal(u, v)


def test_fedbuff_timing_only_counts_server_steps() -> None:
    pool = SimulatedPool(FixedTimes((1.0, 1.0, 1.0)), None, seed=0)
    res = run(
        FedBuff(3, scale(1.0)),
        pool,
        np.zeros(2),
        stop=StopRule(max_updates=4),
        rng=np.random.default_rng(0),
    )
    assert res.version == 4 and res.counts["arrivals"] == 12 and res.time == 4.0


# -------------------------------------------------------------------- FedAsync


def test_fedasync_alpha1_single_client_replaces_the_model() -> None:
    prob = HeteroQuadratic(centers(1), noise=1.0)
    task = local_sgd_task(prob, 3, 0.1, output="model")
    pool = SimulatedPool(FixedTimes((2.0,)), task, seed=11)
    xs = params_after_each_update(FedAsync(mixing=1.0), pool, np.zeros(3), 20)
    oracle = stream(11, Stream.ORACLE, 0)
    x = np.zeros(3)
    for k in range(1, 21):
        x = task(0, x, oracle)
        np.testing.assert_array_equal(xs[k], x)


def test_fedbuff_k1_scale1_is_fedasync_alpha1_single_client() -> None:
    prob = HeteroQuadratic(centers(1), noise=1.0)
    stop = StopRule(max_updates=50)
    buff = run(
        FedBuff(1, scale(1.0)),
        SimulatedPool(ExponentialTimes((1.0,)), local_sgd_task(prob, 3, 0.2), 4),
        np.zeros(3),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    mix = run(
        FedAsync(mixing=1.0),
        SimulatedPool(
            ExponentialTimes((1.0,)), local_sgd_task(prob, 3, 0.2, output="model"), 4
        ),
        np.zeros(3),
        stop=stop,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(buff.params, mix.params, rtol=1e-12, atol=1e-12)
    assert buff.time == mix.time


def test_fedasync_hand_trajectory_with_polynomial_staleness() -> None:
    # Clients upload fixed models c_w; times (1, 1.5); α = ½, s = 1/(1+delay).
    c = {0: np.array([4.0, 0.0]), 1: np.array([0.0, 8.0])}
    policy = FedAsync(mixing=0.5, staleness=PolynomialStaleness(1.0))
    pool = SimulatedPool(FixedTimes((1.0, 1.5)), const_task(c), seed=0)
    x0 = np.array([2.0, 2.0])
    res = run(
        policy, pool, x0, stop=StopRule(max_updates=3), rng=np.random.default_rng(0)
    )
    x1 = 0.5 * x0 + 0.5 * c[0]  # t=1: w0, delay 0, α = ½
    x2 = 0.75 * x1 + 0.25 * c[1]  # t=1.5: w1@v0, delay 1, α = ¼
    x3 = 0.75 * x2 + 0.25 * c[0]  # t=2: w0@v1, delay 1, α = ¼
    np.testing.assert_array_equal(res.params, x3)
    assert res.recorder.arrival_arrays()["delay"].tolist() == [0, 1, 1]


def test_federated_policies_converge_on_heterogeneous_clients() -> None:
    # With uniform random assignment (Algorithm 2) and constant weights, the mean of
    # the client optima, which minimises f = (1/n) Σ f_i, is the fixed point; the
    # iterate fluctuates around it with spread ~ sqrt(effective stepsize).
    # (Staleness weights would bias it towards the fast clients' optima.)
    n = 8
    prob = HeteroQuadratic(centers(n, spread=1.0), noise=0.3)
    target = prob.centers.mean(axis=0)
    timing = ExponentialTimes((1.0,) * 4 + (6.0,) * 4)
    for policy, output, eta_l in [
        (FedBuff(4, scale(1.0), assign="random"), "delta", 0.005),
        (FedAsync(0.5, assign="random"), "model", 0.01),
    ]:
        task = local_sgd_task(prob, 2, eta_l, output=output)
        res = run(
            policy,
            SimulatedPool(timing, task, seed=2),
            np.zeros(3),
            stop=StopRule(max_updates=3000),
            rng=np.random.default_rng(1),
        )
        assert np.linalg.norm(res.params - target) < 0.1, policy.name


# ------------------------------------------------------------------ availability


def test_periodic_offline_intervals() -> None:
    m = PeriodicOffline(period=10.0, off_time=2.0, phases=(0.0, 5.0))
    rng = np.random.default_rng(0)
    lost = [
        m.lost(0, 0, s, e, rng)
        for s, e in [(0, 1), (3, 9), (3, 11), (9, 10), (2, 5), (12, 13), (11, 12.5)]
    ]
    assert lost == [True, False, True, False, False, False, True]
    assert m.lost(1, 0, 3.0, 4.0, rng) is False and m.lost(1, 0, 3.0, 5.5, rng) is True


def test_dropout_models_live_in_sim_dropout_and_the_sim_package_exports_them() -> None:
    import clipasync.sim
    from clipasync.sim import dropout

    for name in ("BernoulliDropout", "PeriodicOffline", "ScriptedDropout"):
        cls = getattr(dropout, name)
        assert cls.__module__ == "clipasync.sim.dropout"
        assert getattr(clipasync.sim, name) is cls
    assert make_dropout({"kind": "bernoulli", "p": 0.25}) == BernoulliDropout(0.25)
    spec = {"kind": "periodic", "period": 10, "off_time": 2, "phases": [0, 5]}
    assert make_dropout(spec) == PeriodicOffline(10, 2, (0.0, 5.0))
    with pytest.raises(ConfigError, match="phases list 2 workers, the pool has 3"):
        dropout.check_phases(make_dropout(spec), 3)
    with pytest.raises(ConfigError, match="unknown dropout kind"):
        make_dropout({"kind": "always"})


def test_worker_streams_are_made_once_at_first_use() -> None:
    from clipasync.sim.pool import WorkerStreams

    streams = WorkerStreams(7, Stream.AVAILABILITY, 3)
    assert streams.peek(1) is None
    rng = streams(1)
    assert streams(1) is rng and streams.peek(1) is rng and streams.peek(0) is None
    first = rng.random()
    assert first == stream(7, Stream.AVAILABILITY, 1).random()
    state = rng.bit_generator.state
    again = WorkerStreams(7, Stream.AVAILABILITY, 3)
    again.restore(1, state)
    assert again(1).random() == rng.random()


def fedbuff_run(pool: Any, max_updates: int = 12) -> Any:
    return run(
        FedBuff(2, scale(0.5)),
        pool,
        np.zeros(3),
        stop=StopRule(max_updates=max_updates),
        rng=np.random.default_rng(0),
    )


def test_lost_job_is_counted_and_nothing_else_changes() -> None:
    prob = HeteroQuadratic(centers(3))  # exact oracle: a payload depends on x only
    task = local_sgd_task(prob, 2, 0.3)
    w0, w2 = (1.0,) * 40, (3.0,) * 40
    # Worker 1's first attempt (2.0) is lost when due at t=2; the retry takes 2.5.
    lossy = UnreliablePool(
        SimulatedPool(TraceTimes((w0, (2.0, 2.5) + (2.0,) * 40, w2)), task, seed=0),
        ScriptedDropout(frozenset({(1, 0)})),
        seed=0,
    )
    # The same run where that job is replaced by one job of 2.0 + 2.5 time units.
    scripted = SimulatedPool(TraceTimes((w0, (4.5,) + (2.0,) * 40, w2)), task, seed=0)
    a, b = fedbuff_run(lossy), fedbuff_run(scripted)
    assert lossy.lost_jobs == 1 and lossy.lost_by_worker == [0, 1, 0]
    assert lossy.lost_compute_time == 2.0
    assert a.stop_reason == "max_updates" and a.counts == b.counts
    np.testing.assert_array_equal(a.params, b.params)
    ra, rb = a.recorder.arrival_arrays(), b.recorder.arrival_arrays()
    for col in ra:
        np.testing.assert_array_equal(ra[col], rb[col], err_msg=col)
    assert 4.5 in ra["compute_time"].tolist()


def test_random_dropouts_run_goes_on_and_keeps_concurrency() -> None:
    prob = HeteroQuadratic(centers(6), noise=1.0)
    task = local_sgd_task(prob, 2, 0.1)
    timing = ExponentialTimes((1.0, 1.0, 1.0, 5.0, 5.0, 5.0))

    def make() -> UnreliablePool:
        return UnreliablePool(
            SimulatedPool(timing, task, seed=9), BernoulliDropout(0.3), seed=9
        )

    p1, p2 = make(), make()
    r1, r2 = fedbuff_run(p1, 100), fedbuff_run(p2, 100)
    assert r1.stop_reason == "max_updates"
    assert p1.lost_jobs > 20 and sum(p1.lost_by_worker) == p1.lost_jobs
    assert p1.in_flight() == 6  # every worker still has its job
    np.testing.assert_array_equal(r1.params, r2.params)  # deterministic given seed
    assert p1.lost_jobs == p2.lost_jobs
    # Lost attempts never reach the policy: arrivals = inner arrivals − losses.
    assert r1.counts["arrivals"] == 200


def test_always_lost_job_raises_worker_failed() -> None:
    pool = UnreliablePool(
        SimulatedPool(FixedTimes((1.5,)), None, seed=0),
        PeriodicOffline(period=2.0, off_time=1.0, phases=(0.0,)),
        seed=0,
        max_losses_per_job=5,
    )
    with pytest.raises(WorkerFailed, match="lost 5 times"):
        fedbuff_run(pool)


@pytest.mark.parametrize(
    "timing",
    [
        FixedTimes((1.0, 2.0, 3.0, 4.0)),
        ExponentialTimes((0.5, 1.0, 2.0, 4.5)),
    ],
)
def test_open_system_concurrency_follows_littles_law(timing: Any) -> None:
    rate, horizon = 4.0, 3000.0
    pool = OpenSystemPool(timing, rate, None, seed=0)
    res = run(
        AsyncSGD(scale(0.1), assign="random"),
        pool,
        np.zeros(2),
        stop=StopRule(max_time=horizon),
        rng=np.random.default_rng(0),
    )
    expected = rate * float(np.mean(timing.mean_times()))  # λ E[τ]: 10 and 8
    assert pool.mean_concurrency() == pytest.approx(expected, rel=0.05)
    assert pool.started_jobs == pytest.approx(rate * horizon, rel=0.05)
    # The run stopped on the first arrival past the horizon, which is not counted.
    assert res.counts["arrivals"] == pool.started_jobs - pool.in_flight() - 1
    # Every job ran at the newest model: a delay counts arrivals during the job.
    delays = res.recorder.arrival_arrays()["delay"]
    assert delays.mean() == pytest.approx(expected, rel=0.1)


def test_open_system_runs_fedbuff_with_payloads() -> None:
    # Uniform client draws: the mean of the optima is the fixed point (see above).
    prob = HeteroQuadratic(centers(10, spread=1.0), noise=0.5)
    pool = OpenSystemPool(
        ExponentialTimes((1.0,) * 5 + (4.0,) * 5),
        3.0,
        local_sgd_task(prob, 2, 0.01),
        seed=1,
    )
    res = run(
        FedBuff(3, scale(1.0)),
        pool,
        np.zeros(3),
        stop=StopRule(max_updates=1000),
        rng=np.random.default_rng(0),
    )
    assert np.linalg.norm(res.params - prob.centers.mean(axis=0)) < 0.3
    jobs = res.recorder.arrival_arrays()["job"]
    assert np.unique(jobs).shape[0] == jobs.shape[0]  # ids stay unique


def test_open_system_arrival_is_a_plain_arrival() -> None:
    pool = OpenSystemPool(FixedTimes((1.0,)), 1.0, None, seed=0)
    token = pool.submit(0, np.zeros(1), 0)
    a = pool.next_arrival()
    assert isinstance(a, Arrival) and a.job == token and a.compute_time == 1.0
    assert math.isclose(a.time - a.compute_time, pool.now() - 1.0)


def test_open_system_loses_jobs_and_goes_on() -> None:
    timing = ExponentialTimes((1.0, 3.0))
    pool = OpenSystemPool(timing, 2.0, None, seed=4, dropout=BernoulliDropout(0.5))
    res = run(
        AsyncSGD(scale(0.1)),
        pool,
        np.zeros(2),
        stop=StopRule(max_time=1000.0),
        rng=np.random.default_rng(0),
    )
    done = pool.started_jobs - pool.in_flight() - 1  # the last pop is past the horizon
    assert res.counts["arrivals"] + pool.lost_jobs == done
    assert pool.lost_jobs == pytest.approx(done / 2, rel=0.1)
    assert sum(pool.lost_by_worker) == pool.lost_jobs
    assert pool.mean_concurrency() == pytest.approx(2.0 * 2.0, rel=0.1)  # unchanged


def test_unreliable_pool_refuses_an_open_system() -> None:
    with pytest.raises(ConfigError, match="dropout= to OpenSystemPool"):
        UnreliablePool(
            OpenSystemPool(FixedTimes((1.0,)), 1.0, None, 0),
            BernoulliDropout(0.1),
            seed=0,
        )
    with pytest.raises(ConfigError, match="phases list 1 workers"):
        UnreliablePool(
            SimulatedPool(FixedTimes((1.0, 1.0)), None, 0),
            PeriodicOffline(2.0, 1.0, (0.0,)),
            seed=0,
        )
