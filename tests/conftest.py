"""Shared fixtures: a seeded rng, small exact problems, federated clients with
known optima, runs on real pools."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, WorkerPool, run
from clipasync.runtime.driver import run_resumable
from clipasync.types import Vector

#: The repository root (the test folders mirror the packages at any depth).
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def two_node_cluster() -> Iterator[Any]:
    """A two-node ``ray.cluster_utils.Cluster`` on this machine (one CPU per node,
    on the loopback address), any Ray session shut down first; on exit the session
    and the cluster are shut down."""
    import ray
    from ray.cluster_utils import Cluster

    from clipasync.runtime.ray_session import _loopback_node_ip

    if ray.is_initialized():
        ray.shutdown()
    with _loopback_node_ip(ray):
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False},
        )
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


class ScriptedRng:
    """Stands in for a Generator whose ``integers`` returns scripted values."""

    def __init__(self, values: list[int]) -> None:
        self.values = list(values)

    def integers(self, high: int) -> int:
        v = self.values.pop(0)
        assert 0 <= v < high
        return v


def diag_quadratic_grad(
    worker: int, x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Exact gradient of f(x) = ½ x₁² + x₂² (∇f = (x₁, 2x₂)); ignores the rng."""
    del worker, rng
    return np.array([x[0], 2.0 * x[1]])


def noisy_quadratic_grad(
    worker: int, x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """∇f(x) + N(0, I) for f(x) = ½‖x‖² in any dimension."""
    del worker
    return x + rng.standard_normal(x.shape)


# Federated clients: heterogeneous quadratics f_i(x) = ½‖x − c_i‖² (client i's
# optimum is c_i), with optional Gaussian oracle noise, so every expected value is
# easy to write.


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


# Real pools (threads, Ray actors) must be closed even when a run fails, or a
# failing test leaves workers behind that slow down or hang the rest of the session.


def run_and_close(
    pool: WorkerPool, policy: Any, x0: np.ndarray, stop: StopRule, *, seed: int = 0
) -> RunResult:
    """:func:`clipasync.engine.run` from ``x0`` with rng ``seed``; closes ``pool``."""
    try:
        return run(policy, pool, x0, stop=stop, rng=np.random.default_rng(seed))
    finally:
        pool.close()


def run_resumable_and_close(
    pool: WorkerPool,
    policy: Any,
    x0: np.ndarray,
    stop: StopRule,
    *,
    checkpoint_dir: str | os.PathLike[str],
    checkpoint_every: int,
    resume: bool = False,
    seed: int = 0,
) -> RunResult:
    """:func:`~clipasync.runtime.driver.run_resumable` likewise; closes ``pool``."""
    try:
        return run_resumable(
            policy,
            pool,
            x0,
            stop=stop,
            rng=np.random.default_rng(seed),
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
        )
    finally:
        pool.close()


def tiny_experiment(methods: dict[str, Any]) -> dict[str, Any]:
    """A parsed experiment file small enough to run in a test: least squares on 60
    rows, two fast workers and one at time 3, 12 time units."""
    return {
        "name": "toy",
        "seeds": [0],
        "problem": {
            "name": "least_squares",
            "num_samples": 60,
            "dim": 4,
            "batch_size": 6,
        },
        "timing": {"kind": "two_speed", "num_fast": 2, "num_slow": 1, "slow_time": 3},
        "methods": methods,
        "stop": {"max_time": 12},
        "eval_every": 3,
        "workers": 1,
    }
