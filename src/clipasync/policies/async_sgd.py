"""Asynchronous SGD: vanilla, clipped (Erickson & Johansson 2026, Alg. 1 and 2) and
delay-adaptive (Mishchenko et al. 2022), as one policy with a gradient transform.

On every arrival of a gradient g computed at version v while the server is at k:

.. math:: x_{k+1} = x_k - T(g;\\ \\text{delay}=k-v),

where T is the transform: ``scale(γ)`` (vanilla), ``chain(clip_by_norm(c), scale(γ))``
(clipped ASGD) or ``scale_by_delay(γ)`` (delay-adaptive). The next job goes to

* ``assign="same"``: the worker that just returned (Algorithm 1, homogeneous data);
* ``assign="random"``: a worker drawn uniformly from all n, which queues the job
  FIFO if it is busy; the job's gradient is taken at the model current when it was
  queued (Algorithm 2, heterogeneous/federated data). Uniform sampling is what makes
  the scheduled oracle conditionally unbiased for ∇f = (1/n) Σ ∇f_i.

References:
    Erickson & Johansson (2026), "Clipping Makes Distributed and Federated
    Asynchronous SGD Robust to Stragglers", Algorithms 1–2, Theorems 4.2–5.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clipasync.policies.base import (
    Assign,
    PolicyBase,
    check_assign,
    check_num_workers,
    checked_norm,
    next_worker,
    skipped_reply,
)
from clipasync.transforms.base import GradientTransform
from clipasync.types import Arrival, Reply, UpdateContext, Vector

__all__ = ["Assign", "AsyncSGD", "AsyncState"]


@dataclass(frozen=True, slots=True)
class AsyncState:
    """State of :class:`AsyncSGD`.

    Attributes:
        x: Current iterate x_k.
        version: k.
        transform_state: State of the gradient transform.
        num_workers: n.
        rng: Stream for random assignment (only drawn from when ``assign="random"``).
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    rng: np.random.Generator


@dataclass(frozen=True)
class AsyncSGD(PolicyBase[AsyncState]):
    """Asynchronous SGD applying every arrival at once (see module docstring).

    Args:
        transform: Maps a gradient to the update vector (includes the stepsize).
        assign: ``"same"`` (Algorithm 1) or ``"random"`` (Algorithm 2).
        name: Label used in reports.
    """

    transform: GradientTransform
    assign: Assign = "same"
    name: str = "async_sgd"

    def __post_init__(self) -> None:
        check_assign(self.assign)

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> AsyncState:
        n = check_num_workers(num_workers)
        return AsyncState(x0, 0, self.transform.init(x0), n, rng)

    def on_arrival(
        self, state: AsyncState, arrival: Arrival
    ) -> tuple[AsyncState, Reply]:
        delay = state.version - arrival.version
        g = arrival.payload
        if g is None:  # timing-only run: advance the version, keep x
            new = AsyncState(
                state.x,
                state.version + 1,
                state.transform_state,
                state.num_workers,
                state.rng,
            )
            nxt = next_worker(self.assign, state, arrival.worker)
            return new, Reply(applied=True, dispatch=nxt)
        norm = checked_norm(g)
        if norm is None:
            nxt = next_worker(self.assign, state, arrival.worker)
            return state, skipped_reply(arrival.worker, nxt)
        ctx = UpdateContext(
            state.version, delay, arrival.worker, state.num_workers, norm, g
        )
        u, ts, info = self.transform.update(g, state.transform_state, ctx)
        info.setdefault("pre_clip_norm", norm)
        new = AsyncState(
            state.x - u, state.version + 1, ts, state.num_workers, state.rng
        )
        nxt = next_worker(self.assign, state, arrival.worker)
        return new, Reply(applied=True, dispatch=nxt, info=info)

    def to_config(self) -> dict[str, Any]:
        return {"policy": "AsyncSGD", "assign": self.assign}
