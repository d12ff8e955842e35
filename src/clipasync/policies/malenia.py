"""Malenia SGD (Tyurin & Richtárik, NeurIPS 2023): the time-optimal synchronous
method for data that differ across workers.

Every worker computes stochastic gradients of its own f_i at the current point x_k,
restarting there each time it finishes. The server adds a gradient from worker i
that was computed at x_k to i's entry of a table (sum G_i, count b_i; see
:mod:`clipasync.policies.tables`) and steps once every worker has sent at least one
and the harmonic mean of the counts reaches S/n:

.. math::

    \\Big(\\frac{1}{n}\\sum_{i=1}^{n}\\frac{1}{b_i}\\Big)^{-1} \\ge \\frac{S}{n},
    \\qquad
    x_{k+1} = x_k - T\\Big(\\frac{1}{n}\\sum_{i=1}^{n}\\frac{G_i}{b_i}\\Big).

The mean over workers of each worker's mean weights every f_i by 1/n, so the method
minimises f = (1/n) Σ f_i however the speeds differ, while fast workers still lower
the variance of their own entry. After the step the table is cleared and every
worker computes at x_{k+1}: with ``cancel_stale=True`` (the default) the jobs still
at x_k are cancelled and all workers restart at once, as the public simulator of the
Tyurin–Richtárik line does (its ``MaleniaSGD`` resets every node at each step);
with ``False`` they finish and their gradients are discarded on arrival (counted).

Note:
    The paper's stepsize is tied to S = ⌈σ²/ε⌉; here S (``batch_size``) is free and
    the stepsize lives in the transform T. With S ≤ n the condition holds as soon
    as every worker has sent one gradient (the harmonic mean of counts ≥ 1 is at
    least 1 ≥ S/n), which is the simulator's ``MaleniaSGD`` rule exactly. The
    condition is checked in exact rational arithmetic.

References:
    Tyurin & Richtárik (NeurIPS 2023), "Optimal Time Complexities of Parallel
    Stochastic Optimization Methods Under a Fixed Computation Model"
    (arXiv 2305.12387), Malenia SGD, the heterogeneous-data method.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from clipasync.policies import tables
from clipasync.policies.base import (
    PolicyBase,
    aggregate_step,
    check_count,
    check_num_workers,
    payload_info,
    skipped_reply,
)
from clipasync.transforms.base import GradientTransform
from clipasync.types import Arrival, Reply, Vector


@dataclass(frozen=True, slots=True)
class MaleniaState:
    """State of :class:`Malenia`.

    Attributes:
        x: Current iterate x_k.
        version: k.
        transform_state: State of the transform.
        num_workers: n.
        sums: G_i, the sum of worker i's gradients at x_k (``None``: none yet).
        counts: b_i, their number.
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    sums: tables.Sums
    counts: tables.Counts


@dataclass(frozen=True)
class Malenia(PolicyBase[MaleniaState]):
    """Malenia SGD: step once (1/n Σ 1/b_i)^{-1} ≥ S/n with every b_i ≥ 1.

    Args:
        transform: Applied to (1/n) Σ_i G_i/b_i (stepsize, optional clipping).
        batch_size: S ≥ 1.
        cancel_stale: On a step, cancel the jobs at x_k and restart every worker at
            x_{k+1} (otherwise they finish and are discarded).
        name: Label used in reports.
    """

    transform: GradientTransform
    batch_size: int
    cancel_stale: bool = True
    name: str = "malenia"

    def __post_init__(self) -> None:
        check_count("batch_size (S)", self.batch_size)

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> MaleniaState:
        del rng
        n = check_num_workers(num_workers)
        return MaleniaState(x0, 0, self.transform.init(x0), n, *tables.empty(n))

    def on_arrival(
        self, state: MaleniaState, arrival: Arrival
    ) -> tuple[MaleniaState, Reply]:
        w, n = arrival.worker, state.num_workers
        if arrival.version != state.version:
            return state, Reply(applied=False, discarded=True, dispatch=(w,))
        g = arrival.payload
        info = payload_info(g)
        if info is None:
            return state, skipped_reply(w)
        sums, counts = tables.add(state.sums, state.counts, w, g)
        if not tables.harmonic_at_least(counts, Fraction(self.batch_size, n)):
            new = MaleniaState(
                state.x, state.version, state.transform_state, n, sums, counts
            )
            return new, Reply(applied=False, dispatch=(w,), info=info)
        mean = tables.worker_mean(sums, counts)  # None: timing-only run, x is kept
        x, ts = aggregate_step(self.transform, state, mean, info)
        new = MaleniaState(x, state.version + 1, ts, n, *tables.empty(n))
        if self.cancel_stale:
            # Every worker has one job in flight (arrivals are re-dispatched), all
            # at x_k: restart them all at x_{k+1}.
            others = tuple(i for i in range(n) if i != w)
            return new, Reply(
                applied=True, dispatch=tuple(range(n)), cancel=others, info=info
            )
        return new, Reply(applied=True, dispatch=(w,), info=info)

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "Malenia",
            "batch_size": self.batch_size,
            "cancel_stale": self.cancel_stale,
        }
