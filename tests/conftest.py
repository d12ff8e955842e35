"""Shared fixtures: a seeded rng, small exact problems, runs on real pools."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, WorkerPool, run
from clipasync.runtime.driver import run_resumable


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
