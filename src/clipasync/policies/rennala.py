"""Rennala SGD (Tyurin & Richtárik, NeurIPS 2023) and synchronous minibatch SGD.

Rennala: every worker computes at the current point x_k; a worker that finishes
restarts at once at the current point. The server keeps only gradients computed at
x_k and, once B of them have arrived, steps with their mean:

.. math:: x_{k+1} = x_k - T\\Big(\\frac{1}{B}\\sum_{j=1}^{B} g_j\\Big).

By default (``cancel_stale=False``) this is the paper's method (Tyurin & Richtárik
2023, "Optimal Time Complexities of Parallel Stochastic Optimization Methods Under a
Fixed Computation Model", Rennala SGD): after a step the jobs still computing at the
old point run to the end, their gradients are ignored on arrival (counted as
discarded) and their workers are then pointed at the current iterate. With
``cancel_stale=True`` the step cancels every job still computing at the old point
and restarts all workers at x_{k+1}. On fixed compute times the cancelling variant
makes at least as many steps in the same time (a stale job's work is lost either
way; cancelled, its worker starts the fresh job at once), and it is what the public
simulator of that line of work does: its Rennala restarts every worker at the start
of each step (it also breaks ties by worker index, ``tie_break: worker`` here). Fast
workers thus contribute several gradients to one batch, which is what makes Rennala
time-optimal in the fixed computation model. The worker whose gradient completes a
batch gets its next job at x_{k+1} in both variants.

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
from clipasync.policies.base import (
    PolicyBase,
    aggregate_step,
    check_num_workers,
    payload_info,
    skipped_reply,
)
from clipasync.transforms.base import GradientTransform
from clipasync.types import Arrival, Reply, Vector


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


def _collect(
    state: BatchState, total: Vector | None, count: int, waiting: tuple[int, ...] = ()
) -> BatchState:
    """The state at the same x_k, its batch now ``count`` gradients summing to
    ``total``."""
    x, version, ts, n = state.x, state.version, state.transform_state, state.num_workers
    return BatchState(x, version, ts, n, total, count, waiting)


class _BatchPolicy(PolicyBase[BatchState]):
    """What Rennala and SyncMinibatch share: a ``transform``, an empty batch at x_0
    and the step with the batch's mean."""

    transform: GradientTransform

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> BatchState:
        del rng
        n = check_num_workers(num_workers)
        return BatchState(x0, 0, self.transform.init(x0), n, None, 0)

    def _step(
        self, state: BatchState, total: Vector | None, count: int
    ) -> tuple[BatchState, dict[str, float]]:
        """x_{k+1} = x_k − T(total / count), with an empty batch (timing-only:
        ``total is None``, x is kept)."""
        info: dict[str, float] = {}
        x, ts = aggregate_step(
            self.transform, state, None if total is None else total / count, info
        )
        return BatchState(x, state.version + 1, ts, state.num_workers, None, 0), info


def _accumulate(total: Vector | None, g: Vector | None) -> Vector | None:
    if g is None:
        return None
    return g.copy() if total is None else total + g


@dataclass(frozen=True)
class Rennala(_BatchPolicy):
    """Rennala SGD: mean of ``batch_size`` fresh gradients per step.

    Args:
        transform: Applied to the mean gradient (stepsize, optional clipping).
        batch_size: B ≥ 1, the number of gradients at x_k per step.
        cancel_stale: On a step, cancel the jobs at the old point and restart every
            worker at the new one (default ``False``, the paper's rule: they
            finish, are discarded and their workers restart at the current point).
        name: Label used in reports.
    """

    transform: GradientTransform
    batch_size: int
    cancel_stale: bool = False
    name: str = "rennala"

    def __post_init__(self) -> None:
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(
                f"batch_size (B) must be an integer >= 1, got {self.batch_size}"
            )

    def on_arrival(
        self, state: BatchState, arrival: Arrival
    ) -> tuple[BatchState, Reply]:
        w = arrival.worker
        if arrival.version != state.version:
            return state, Reply(applied=False, discarded=True, dispatch=(w,))
        g = arrival.payload
        info = payload_info(g)
        if info is None:
            return state, skipped_reply(w)
        total, count = _accumulate(state.total, g), state.count + 1
        if count < self.batch_size:
            new = _collect(state, total, count)
            return new, Reply(applied=False, dispatch=(w,), info=info)
        new, step_info = self._step(state, total, count)
        info.update(step_info)
        if self.cancel_stale:
            # Each worker has exactly one job in flight (arrivals are re-dispatched),
            # all at the old point: restart them all at x_{k+1}.
            others = tuple(i for i in range(state.num_workers) if i != w)
            everyone = tuple(range(state.num_workers))
            return new, Reply(applied=True, dispatch=everyone, cancel=others, info=info)
        return new, Reply(applied=True, dispatch=(w,), info=info)

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "Rennala",
            "batch_size": self.batch_size,
            "cancel_stale": self.cancel_stale,
        }


@dataclass(frozen=True)
class SyncMinibatch(_BatchPolicy):
    """Synchronous minibatch SGD: one gradient per worker at x_k, then a step.

    Args:
        transform: Applied to the mean of the n gradients.
        name: Label used in reports.
    """

    transform: GradientTransform
    name: str = "minibatch"

    def start(self, state: BatchState) -> tuple[int, ...]:
        """Every worker whose gradient at x_k is missing gets a job (all of them at
        the start of a run; after :meth:`restart`, the round goes on)."""
        return tuple(w for w in range(state.num_workers) if w not in state.waiting)

    def on_arrival(
        self, state: BatchState, arrival: Arrival
    ) -> tuple[BatchState, Reply]:
        w = arrival.worker
        g = arrival.payload
        info = payload_info(g)
        if info is None:
            # Recompute this worker's share at the same point; the round waits.
            return state, skipped_reply(w)
        total = state.total if g is None else _accumulate(state.total, g)
        waiting = (*state.waiting, w)
        if len(waiting) < state.num_workers:
            new = _collect(state, total, len(waiting), waiting)
            return new, Reply(applied=False, info=info)
        new, step_info = self._step(state, total, len(waiting))
        info.update(step_info)
        return new, Reply(
            applied=True, dispatch=tuple(range(state.num_workers)), info=info
        )

    def to_config(self) -> dict[str, Any]:
        return {"policy": "SyncMinibatch"}
