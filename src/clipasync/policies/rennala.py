"""Rennala SGD (Tyurin & Richtárik, NeurIPS 2023) and synchronous minibatch SGD.

Rennala: every worker computes at the current point x_k; a worker that finishes
restarts at once at the current point. The server keeps only gradients computed at
x_k and, once B of them have arrived, steps with their mean:

.. math:: x_{k+1} = x_k - T\\Big(\\frac{1}{B}\\sum_{j=1}^{B} g_j\\Big).

With ``cancel_stale=True`` (the default) the step also cancels every job still
computing at the old point and restarts all workers at x_{k+1} (the KAUST
implementation restarts workers at the current point the same way); with ``False``
those jobs finish and their gradients are discarded on arrival (counted). Fast
workers thus
contribute several gradients to one batch, which is what makes Rennala time-optimal
in the fixed computation model.

Synchronous minibatch SGD waits for exactly one gradient from every worker at the same
x_k, steps with their mean and dispatches all workers again: each step takes as long
as the slowest worker.

Note:
    The paper's Rennala sums S gradients and its stepsize is tied to S = ⌈σ²/ε⌉; here
    ``batch_size`` is the free parameter B and the stepsize lives in the transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clipasync.errors import ConfigError
from clipasync.policies.base import checked_norm, skipped_reply
from clipasync.transforms import GradientTransform
from clipasync.types import Arrival, Reply, UpdateContext, Vector


@dataclass(frozen=True, slots=True)
class BatchState:
    """State of :class:`Rennala` and :class:`SyncMinibatch`.

    Attributes:
        x: Current iterate.
        version: k.
        transform_state: State of the transform.
        num_workers: n.
        total: Sum of the gradients collected at x_k (``None`` when empty or in a
            timing-only run).
        count: Number of gradients collected at x_k.
        waiting: Workers whose gradient at x_k has arrived (minibatch only).
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    total: Vector | None
    count: int
    waiting: tuple[int, ...] = ()


def _step(
    transform: GradientTransform, state: BatchState, total: Vector | None, count: int
) -> tuple[Vector, Any, dict[str, float]]:
    if total is None:
        return state.x, state.transform_state, {}
    mean = total / count
    ctx = UpdateContext(state.version, 0, -1, state.num_workers)
    u, ts, info = transform.update(mean, state.transform_state, ctx)
    return state.x - u, ts, info


def _initial_state(
    transform: GradientTransform, x0: Vector, num_workers: int
) -> BatchState:
    """State at x_0 with an empty batch (shared by Rennala and SyncMinibatch)."""
    if num_workers < 1:
        raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
    return BatchState(x0, 0, transform.init(x0), num_workers, None, 0)


def _accumulate(total: Vector | None, g: Vector | None) -> Vector | None:
    if g is None:
        return None
    return g.copy() if total is None else total + g


@dataclass(frozen=True)
class Rennala:
    """Rennala SGD: mean of ``batch_size`` fresh gradients per step.

    Args:
        transform: Applied to the mean gradient (stepsize, optional clipping).
        batch_size: B ≥ 1, the number of gradients at x_k per step.
        cancel_stale: On a step, cancel the jobs at the old point and restart every
            worker at the new one (otherwise they finish and are discarded).
        name: Label used in reports.
    """

    transform: GradientTransform
    batch_size: int
    cancel_stale: bool = True
    name: str = "rennala"

    def __post_init__(self) -> None:
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(
                f"batch_size (B) must be an integer >= 1, got {self.batch_size}"
            )

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> BatchState:
        del rng
        return _initial_state(self.transform, x0, num_workers)

    def start(self, state: BatchState) -> tuple[int, ...]:
        return tuple(range(state.num_workers))

    def on_arrival(
        self, state: BatchState, arrival: Arrival
    ) -> tuple[BatchState, Reply]:
        w = arrival.worker
        if arrival.version != state.version:
            return state, Reply(applied=False, discarded=True, dispatch=(w,))
        g = arrival.payload
        info: dict[str, float] = {}
        if g is not None:
            norm = checked_norm(g)
            if norm is None:
                return state, skipped_reply(w)
            info["pre_clip_norm"] = norm
        total, count = _accumulate(state.total, g), state.count + 1
        if count < self.batch_size:
            new = BatchState(
                state.x,
                state.version,
                state.transform_state,
                state.num_workers,
                total,
                count,
            )
            return new, Reply(applied=False, dispatch=(w,), info=info)
        x, ts, step_info = _step(self.transform, state, total, count)
        info.update(step_info)
        new = BatchState(x, state.version + 1, ts, state.num_workers, None, 0)
        if self.cancel_stale:
            # Each worker has exactly one job in flight (arrivals are re-dispatched),
            # all at the old point: restart them all at x_{k+1}.
            others = tuple(i for i in range(state.num_workers) if i != w)
            everyone = tuple(range(state.num_workers))
            return new, Reply(applied=True, dispatch=everyone, cancel=others, info=info)
        return new, Reply(applied=True, dispatch=(w,), info=info)

    def params(self, state: BatchState) -> Vector:
        return state.x

    def version(self, state: BatchState) -> int:
        return state.version

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "Rennala",
            "batch_size": self.batch_size,
            "cancel_stale": self.cancel_stale,
        }


@dataclass(frozen=True)
class SyncMinibatch:
    """Synchronous minibatch SGD: one gradient per worker at x_k, then a step.

    Args:
        transform: Applied to the mean of the n gradients.
        name: Label used in reports.
    """

    transform: GradientTransform
    name: str = "minibatch"

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> BatchState:
        del rng
        return _initial_state(self.transform, x0, num_workers)

    def start(self, state: BatchState) -> tuple[int, ...]:
        return tuple(range(state.num_workers))

    def on_arrival(
        self, state: BatchState, arrival: Arrival
    ) -> tuple[BatchState, Reply]:
        w = arrival.worker
        g = arrival.payload
        info: dict[str, float] = {}
        total = state.total
        if g is not None:
            norm = checked_norm(g)
            if norm is None:
                # Recompute this worker's share at the same point; the round waits.
                return state, skipped_reply(w)
            info["pre_clip_norm"] = norm
            total = _accumulate(total, g)
        waiting = (*state.waiting, w)
        if len(waiting) < state.num_workers:
            new = BatchState(
                state.x,
                state.version,
                state.transform_state,
                state.num_workers,
                total,
                len(waiting),
                waiting,
            )
            return new, Reply(applied=False, info=info)
        x, ts, step_info = _step(self.transform, state, total, len(waiting))
        info.update(step_info)
        new = BatchState(x, state.version + 1, ts, state.num_workers, None, 0)
        return new, Reply(
            applied=True, dispatch=tuple(range(state.num_workers)), info=info
        )

    def params(self, state: BatchState) -> Vector:
        return state.x

    def version(self, state: BatchState) -> int:
        return state.version

    def to_config(self) -> dict[str, Any]:
        return {"policy": "SyncMinibatch"}
