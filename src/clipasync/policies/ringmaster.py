"""Ringmaster ASGD (Maranjyan, Tyurin & Richtárik, ICML 2025).

On the arrival of a gradient with delay δ = k − v from worker i:

* if δ < R: x_{k+1} = x_k − T(g) and worker i restarts at x_{k+1};
* else the gradient is discarded (counted) and worker i restarts at the current x_k.

With ``cancel_stale=True`` this is the paper's variant "with calculation stops": after
every applied update, each job that can no longer arrive with delay < R (its delay
already reached R) is cancelled and its worker restarts at the current model, so no
worker wastes time on a gradient that will be thrown away.

Note:
    The paper's analysis uses T = scale(γ); any transform can be plugged in (e.g.
    clipping), which the paper does not study. ``R = inf`` gives vanilla ASGD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipasync.errors import ConfigError
from clipasync.policies.base import (
    PolicyBase,
    check_num_workers,
    checked_norm,
    skipped_reply,
)
from clipasync.transforms.base import GradientTransform
from clipasync.types import Arrival, Reply, UpdateContext, Vector


@dataclass(frozen=True, slots=True)
class RingmasterState:
    """State of :class:`Ringmaster`.

    Attributes:
        x: Current iterate.
        version: k.
        transform_state: State of the transform.
        num_workers: n.
        dispatched: Version at which each worker's current job was dispatched (only
            maintained when stale jobs are cancelled).
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    dispatched: tuple[int, ...]


@dataclass(frozen=True)
class Ringmaster(PolicyBase[RingmasterState]):
    """Asynchronous SGD that discards gradients with delay ≥ ``max_delay``.

    Args:
        transform: Maps a gradient to the update vector.
        max_delay: Threshold R ≥ 1 (``math.inf`` accepts everything).
        cancel_stale: Cancel jobs whose delay reached R instead of letting them finish.
        name: Label used in reports.
    """

    transform: GradientTransform
    max_delay: float
    cancel_stale: bool = False
    name: str = "ringmaster"

    def __post_init__(self) -> None:
        if not (self.max_delay >= 1):
            raise ConfigError(f"max_delay (R) must be >= 1, got {self.max_delay}")
        if self.max_delay != math.inf and self.max_delay != int(self.max_delay):
            raise ConfigError(
                f"max_delay (R) must be an integer or inf, got {self.max_delay}"
            )

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> RingmasterState:
        del rng
        n = check_num_workers(num_workers)
        return RingmasterState(x0, 0, self.transform.init(x0), n, (0,) * n)

    def restart(self, state: RingmasterState) -> RingmasterState:
        """Every worker restarts at x_k: its dispatch version is now k."""
        return RingmasterState(
            state.x,
            state.version,
            state.transform_state,
            state.num_workers,
            (state.version,) * state.num_workers,
        )

    def on_arrival(
        self, state: RingmasterState, arrival: Arrival
    ) -> tuple[RingmasterState, Reply]:
        w = arrival.worker
        delay = state.version - arrival.version
        g = arrival.payload
        if delay >= self.max_delay:
            new = self._restart(
                state, state.x, state.version, state.transform_state, (w,)
            )
            return new, Reply(applied=False, discarded=True, dispatch=(w,))
        norm = None
        if g is not None:
            norm = checked_norm(g)
            if norm is None:
                new = self._restart(
                    state, state.x, state.version, state.transform_state, (w,)
                )
                return new, skipped_reply(w)
        info: dict[str, float]
        if g is None:
            x, ts, info = state.x, state.transform_state, {}
        else:
            ctx = UpdateContext(state.version, delay, w, state.num_workers, norm, g)
            u, ts, info = self.transform.update(g, state.transform_state, ctx)
            info.setdefault("pre_clip_norm", norm if norm is not None else math.nan)
            x = state.x - u
        version = state.version + 1
        cancel: tuple[int, ...] = ()
        if self.cancel_stale:
            limit = version - self.max_delay
            cancel = tuple(
                i for i, v in enumerate(state.dispatched) if i != w and v <= limit
            )
        restart = (w, *cancel)
        new = self._restart(state, x, version, ts, restart)
        return new, Reply(applied=True, dispatch=restart, cancel=cancel, info=info)

    def _restart(
        self,
        state: RingmasterState,
        x: Vector,
        version: int,
        ts: Any,
        workers: tuple[int, ...],
    ) -> RingmasterState:
        dispatched = state.dispatched
        if self.cancel_stale:
            d = list(dispatched)
            for i in workers:
                d[i] = version
            dispatched = tuple(d)
        return RingmasterState(x, version, ts, state.num_workers, dispatched)

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "Ringmaster",
            "max_delay": self.max_delay,
            "cancel_stale": self.cancel_stale,
        }
