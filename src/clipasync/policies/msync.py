"""m-synchronous rounds: each step takes the first m of n gradients at x_k.

Synchronous SGD with backup workers (Chen et al. 2016): all n workers compute a
gradient at x_k; the server steps with the mean of the first m to arrive,

.. math:: x_{k+1} = x_k - T\\Big(\\frac{1}{m}\\sum_{j=1}^{m} g_j\\Big),

and sends x_{k+1} to those m workers (which idled after sending, one gradient per
worker and round). The n − m late jobs are *dropped*, the standard rule of Chen et
al.: with ``cancel_stale=False`` (the default) they finish, are discarded on arrival
(counted) and their workers join the current round at x_{k+1} or later; with
``cancel_stale=True`` they are cancelled at the step and every worker restarts at
x_{k+1} at once (no computation is spent on a gradient that will be dropped).

With m = n either variant is synchronous minibatch SGD
(:class:`~clipasync.policies.rennala.SyncMinibatch`, a test checks bit equality).
Unlike Rennala SGD, a worker contributes at most one gradient per step.

Note:
    Chen et al. drop the late gradients of a TensorFlow parameter server, whose
    workers cannot abort a computation, which is the default here. The stepsize
    lives in the transform T.

References:
    Chen, Pan, Monga, Bengio & Jozefowicz (2016), "Revisiting Distributed
    Synchronous SGD", arXiv 1604.00981 (synchronous SGD with backup workers: n =
    m + b workers, the first m gradients per step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clipasync.errors import ConfigError
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
class RoundState:
    """State of :class:`MSync`.

    Attributes:
        x: Current iterate x_k.
        version: k.
        transform_state: State of the transform.
        num_workers: n.
        total: Sum of the gradients at x_k so far (``None``: none, or timing-only).
        waiting: Workers whose gradient at x_k arrived (they idle until the step).
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    total: Vector | None = None
    waiting: tuple[int, ...] = ()


@dataclass(frozen=True)
class MSync(PolicyBase[RoundState]):
    """m-synchronous SGD: step with the mean of the first ``quorum`` (m) gradients.

    Args:
        transform: Applied to the mean of the m gradients.
        quorum: m, 1 ≤ m ≤ n.
        cancel_stale: Cancel the n − m late jobs at each step (else they finish and
            are discarded).
        name: Label used in reports.
    """

    transform: GradientTransform
    quorum: int
    cancel_stale: bool = False
    name: str = "m_sync"

    def __post_init__(self) -> None:
        check_count("quorum (m)", self.quorum)

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> RoundState:
        del rng
        n = check_num_workers(num_workers)
        if self.quorum > n:
            raise ConfigError(
                f"quorum (m) = {self.quorum} exceeds the number of workers ({n})"
            )
        return RoundState(x0, 0, self.transform.init(x0), n)

    def start(self, state: RoundState) -> tuple[int, ...]:
        """Every worker whose gradient at x_k is missing gets a job (all at the start
        of a run; after :meth:`restart`, the round goes on)."""
        return tuple(w for w in range(state.num_workers) if w not in state.waiting)

    def on_arrival(
        self, state: RoundState, arrival: Arrival
    ) -> tuple[RoundState, Reply]:
        w, n = arrival.worker, state.num_workers
        if arrival.version != state.version:
            # A late job of an earlier round: dropped; w joins the current round.
            return state, Reply(applied=False, discarded=True, dispatch=(w,))
        g = arrival.payload
        info = payload_info(g)
        if info is None:  # recompute w's gradient at the same point
            return state, skipped_reply(w)
        total = state.total
        if g is not None:
            total = g.copy() if total is None else total + g
        waiting = (*state.waiting, w)
        if len(waiting) < self.quorum:
            new = RoundState(
                state.x, state.version, state.transform_state, n, total, waiting
            )
            return new, Reply(applied=False, info=info)
        mean = None if total is None else total / len(waiting)  # None: timing-only
        x, ts = aggregate_step(self.transform, state, mean, info)
        new = RoundState(x, state.version + 1, ts, n)
        if self.cancel_stale:
            late = tuple(i for i in range(n) if i not in waiting)
            return new, Reply(
                applied=True, dispatch=tuple(range(n)), cancel=late, info=info
            )
        # Worker order, not arrival order: with m = n this is SyncMinibatch's dispatch.
        return new, Reply(applied=True, dispatch=tuple(sorted(waiting)), info=info)

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "MSync",
            "quorum": self.quorum,
            "cancel_stale": self.cancel_stale,
        }
