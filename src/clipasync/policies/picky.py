"""Picky SGD (Cohen, Daniely, Drori, Koren & Schain, NeurIPS 2021, "Asynchronous
Stochastic Optimization Robust to Arbitrary Delays").

Asynchronous SGD that applies a stale gradient only if the iterate has not moved
far since the gradient's job was dispatched. On the arrival of g = ∇F(x_v; ξ),
computed at the iterate x_v its job was dispatched with, at the current x_k:

* if ‖x_k − x_v‖ ≤ ``threshold``: x_{k+1} = x_k − T(g);
* else g is discarded (counted);

and in both cases the worker restarts at the current iterate. The delay k − v does
not enter the rule: what matters is how far the model moved, so a slow worker's
gradient is used whenever the fast ones have not taken the model far, which is what
makes the method's rate depend on the average rather than the maximum delay. The
paper ties the threshold to the target accuracy (ε / (2L) for an L-smooth f); here
it is a free parameter, and ``threshold = inf`` gives vanilla asynchronous SGD.

Note:
    The paper's analysis uses T = scale(γ); any transform can be plugged in (e.g.
    clipping), which the paper does not study. The policy keeps the dispatch
    iterate of each worker's job (n vectors), as the server of the paper does.
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
class PickyState:
    """State of :class:`PickySGD`.

    Attributes:
        x: Current iterate.
        version: k.
        transform_state: State of the transform.
        num_workers: n.
        dispatched: The iterate each worker's current job was dispatched with.
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    dispatched: tuple[Vector, ...]


@dataclass(frozen=True)
class PickySGD(PolicyBase[PickyState]):
    """Asynchronous SGD that discards a gradient once ‖x_k − x_v‖ > ``threshold``.

    Args:
        transform: Maps a gradient to the update vector.
        threshold: The largest distance ‖x_k − x_v‖ at which a gradient is applied
            (> 0; ``math.inf`` applies everything).
        name: Label used in reports.
    """

    transform: GradientTransform
    threshold: float
    name: str = "picky_sgd"

    def __post_init__(self) -> None:
        if not (self.threshold > 0):
            raise ConfigError(f"threshold must be > 0, got {self.threshold}")

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> PickyState:
        del rng
        n = check_num_workers(num_workers)
        return PickyState(x0, 0, self.transform.init(x0), n, (x0,) * n)

    def restart(self, state: PickyState) -> PickyState:
        """Every worker restarts at x_k."""
        n = state.num_workers
        return PickyState(
            state.x, state.version, state.transform_state, n, (state.x,) * n
        )

    def on_arrival(
        self, state: PickyState, arrival: Arrival
    ) -> tuple[PickyState, Reply]:
        w = arrival.worker
        moved = float(np.linalg.norm(state.x - state.dispatched[w]))
        if not moved <= self.threshold:  # a NaN distance is not "close" either
            new = _redispatch(state, state.x, state.version, state.transform_state, w)
            return new, Reply(
                applied=False, discarded=True, dispatch=(w,), info={"moved": moved}
            )
        g = arrival.payload
        if g is None:  # timing-only: the model does not move
            new = _redispatch(
                state, state.x, state.version + 1, state.transform_state, w
            )
            return new, Reply(applied=True, dispatch=(w,), info={"moved": moved})
        norm = checked_norm(g)
        if norm is None:
            new = _redispatch(state, state.x, state.version, state.transform_state, w)
            return new, skipped_reply(w)
        delay = state.version - arrival.version
        ctx = UpdateContext(state.version, delay, w, state.num_workers, norm, g)
        u, ts, info = self.transform.update(g, state.transform_state, ctx)
        info.setdefault("pre_clip_norm", norm if norm is not None else math.nan)
        info["moved"] = moved
        new = _redispatch(state, state.x - u, state.version + 1, ts, w)
        return new, Reply(applied=True, dispatch=(w,), info=info)

    def to_config(self) -> dict[str, Any]:
        return {"policy": "PickySGD", "threshold": self.threshold}


def _redispatch(
    state: PickyState, x: Vector, version: int, ts: Any, worker: int
) -> PickyState:
    """The state after ``worker``'s arrival, its next job dispatched at ``x``."""
    d = list(state.dispatched)
    d[worker] = x
    return PickyState(x, version, ts, state.num_workers, tuple(d))
