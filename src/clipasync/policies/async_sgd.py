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
from typing import Any, Literal

import numpy as np

from clipasync.errors import ConfigError
from clipasync.policies.base import checked_norm, skipped_reply
from clipasync.transforms import GradientTransform
from clipasync.types import Arrival, Reply, UpdateContext, Vector

Assign = Literal["same", "random"]


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
class AsyncSGD:
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
        if self.assign not in ("same", "random"):
            raise ConfigError(f"assign must be 'same' or 'random', got {self.assign!r}")

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> AsyncState:
        if num_workers < 1:
            raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
        return AsyncState(x0, 0, self.transform.init(x0), num_workers, rng)

    def start(self, state: AsyncState) -> tuple[int, ...]:
        return tuple(range(state.num_workers))

    def _next_worker(self, state: AsyncState, worker: int) -> tuple[int, ...]:
        if self.assign == "same":
            return (worker,)
        return (int(state.rng.integers(state.num_workers)),)

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
            reply = Reply(
                applied=True, dispatch=self._next_worker(state, arrival.worker)
            )
            return new, reply
        norm = checked_norm(g)
        if norm is None:
            return state, skipped_reply(
                arrival.worker, self._next_worker(state, arrival.worker)
            )
        ctx = UpdateContext(
            state.version, delay, arrival.worker, state.num_workers, norm, g
        )
        u, ts, info = self.transform.update(g, state.transform_state, ctx)
        info.setdefault("pre_clip_norm", norm)
        new = AsyncState(
            state.x - u, state.version + 1, ts, state.num_workers, state.rng
        )
        return new, Reply(
            applied=True, dispatch=self._next_worker(state, arrival.worker), info=info
        )

    def params(self, state: AsyncState) -> Vector:
        return state.x

    def version(self, state: AsyncState) -> int:
        return state.version

    def to_config(self) -> dict[str, Any]:
        return {"policy": "AsyncSGD", "assign": self.assign}
