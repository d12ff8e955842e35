"""MindFlayer SGD (Maranjyan, Shaikh Omar & Richtárik 2024, "MindFlayer SGD:
Efficient Parallel SGD in the Presence of Heterogeneous and Random Worker Compute
Times").

Rennala's batch collection (:mod:`clipasync.policies.rennala`) with a time limit
t_i per worker: a job of worker i that is still computing t_i after it started is
abandoned there (no gradient) and the worker starts a fresh one, with a fresh
sample, at the current point. Under random compute times this cuts the heavy tail
that makes Rennala slow: a worker never spends more than t_i on one attempt. The
server steps with the mean of the first B gradients computed at x_k,

.. math:: x_{k+1} = x_k - T\\Big(\\frac{1}{B}\\sum_{j=1}^{B} g_j\\Big),

and by default (``cancel_stale=True``) restarts every worker at x_{k+1}, so each
step is a round in which all workers compute at the same point, as in the paper's
rounds (``cancel_stale=False``: jobs at the old point finish, or time out, and are
ignored, as in Rennala's default). ``t_i = inf`` never abandons, and MindFlayer is
then Rennala.

How the time limit reaches the workers: the policy's :meth:`MindFlayer.time_limit`
gives each dispatched job its limit; the engine submits it with
``pool.submit(..., time_limit=t_i)`` and the pool abandons the job exactly at
start + t_i (:class:`~clipasync.sim.SimulatedPool`; the in-process
:class:`~clipasync.runtime.LocalPool` on its injected times). The abandoned job
arrives as ``Arrival.timed_out`` without a payload and is counted as discarded (the
arrival column ``timed_out`` marks it). A pool that cannot abandon jobs (Ray, the
dropout wrapper, an open system) refuses the method with one ConfigError at its
first dispatch.

Departure from the paper's pseudo-code (as we read it): there each round gives
worker i a fixed number B_i of attempts of at most t_i each and averages the
gradients that finished, so a round lasts max_i B_i t_i at most; here a round ends
once B gradients at x_k have arrived (Rennala's rule), whoever computed them, so
the per-worker counts B_i are not parameters. With fixed compute times below the
limits both are Rennala.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipasync.errors import ConfigError
from clipasync.policies.rennala import BatchState, Rennala
from clipasync.types import Arrival, Reply, Vector


@dataclass(frozen=True, kw_only=True)
class MindFlayer(Rennala):
    """Rennala SGD whose jobs are abandoned and restarted past a time limit.

    Args:
        transform: Applied to the mean gradient (stepsize, optional clipping).
        batch_size: B ≥ 1, the number of gradients at x_k per step.
        time_limits: t_i > 0 per worker, or one value for every worker
            (``math.inf``: no limit).
        cancel_stale: On a step, restart every worker at the new point (default).
        name: Label used in reports.
    """

    time_limits: tuple[float, ...]
    cancel_stale: bool = True
    name: str = "mindflayer"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.time_limits or not all(t > 0 for t in self.time_limits):
            raise ConfigError(
                f"time limits must be > 0 (one, or one per worker), got "
                f"{list(self.time_limits)}"
            )

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> BatchState:
        if len(self.time_limits) not in (1, num_workers):
            raise ConfigError(
                f"time limits: {len(self.time_limits)} values for {num_workers} "
                "workers (give one, or one per worker)"
            )
        return super().init(x0, num_workers, rng)

    def time_limit(self, worker: int) -> float | None:
        """t_i of ``worker``'s jobs (``None``: no limit)."""
        limits = self.time_limits
        t = limits[worker] if len(limits) > 1 else limits[0]
        return None if math.isinf(t) else t

    def on_arrival(
        self, state: BatchState, arrival: Arrival
    ) -> tuple[BatchState, Reply]:
        if arrival.timed_out:
            # Abandoned at its limit: the worker tries again at the current point.
            w = arrival.worker
            return state, Reply(
                applied=False, discarded=True, dispatch=(w,), info={"timed_out": 1.0}
            )
        return super().on_arrival(state, arrival)

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "MindFlayer",
            "batch_size": self.batch_size,
            "time_limits": list(self.time_limits),
            "cancel_stale": self.cancel_stale,
        }
