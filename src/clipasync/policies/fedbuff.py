"""FedBuff: buffered asynchronous aggregation of client deltas (Nguyen et al. 2022).

Each job is one client's local training
(:func:`clipasync.problems.local_training.local_sgd_task`) from the server model of
version v; it returns Δ = x_local − x_v (a *descent* direction, possibly clipped by
the client to ``client_max_norm``). The server keeps a buffer; on the arrival of Δ_i
with delay τ_i = k − v_i:

* if ``max_staleness`` is set and τ_i > ``max_staleness``: discard it (counted);
* if Δ_i is not finite: skip it (counted);
* else add s(τ_i) Δ_i to the buffer; once it holds K deltas, step

.. math::

    ĝ_k = -\\frac{1}{K} \\sum_{i=1}^{K} s(τ_i) Δ_i, \\qquad
    x_{k+1} = x_k - T(ĝ_k),

where T is the server optimizer, a gradient transform: ``scale(η_g)`` gives FedBuff's
x ← x + η_g · mean(Δ); ``chain(momentum(β), scale(η_g))`` adds server momentum
(:func:`clipasync.transforms.momentum.momentum`). The minus sign turns the delta into
the pseudo-gradient the core transforms expect (they return what is *subtracted*).

Every arrival, whatever its fate, gives its worker a new job at the current model
(``assign="same"``) or a uniformly drawn worker one (``assign="random"``, FIFO-queued
if busy, as Erickson & Johansson 2026, Algorithm 2), so concurrency stays at n. The
``version`` counts server steps (buffer flushes); ``Reply.applied`` is true only on
the arrival that completes the buffer.

With K = 1, one local step of size η_l and ``scale(η_g)`` this is
``AsyncSGD(scale(η_g η_l))``, and with clipping ``chain(clip_by_norm(c), ...)`` it is
clipped ASGD (a test checks both).

Note:
    The FedBuff paper divides the weighted sum by K (not by Σ s(τ_i)); so does this
    class, so stale buffers take shorter steps. The server transform sees
    ``UpdateContext(delay=0, worker=-1)``: the buffer mixes several delays.

References:
    Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek & Huba (AISTATS 2022),
    "Federated Learning with Buffered Asynchronous Aggregation", Algorithm 1.
    Erickson & Johansson (2026), "Clipping Makes Distributed and Federated
    Asynchronous SGD Robust to Stragglers", Algorithms 1–2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from clipasync.errors import ConfigError
from clipasync.policies.base import (
    Assign,
    PolicyBase,
    aggregate_step,
    check_assign,
    check_num_workers,
    next_worker,
    payload_info,
    skipped_reply,
)
from clipasync.policies.staleness import ConstantStaleness, StalenessFn
from clipasync.transforms.base import GradientTransform
from clipasync.types import Arrival, Reply, Vector


@dataclass(frozen=True, slots=True)
class FedBuffState:
    """State of :class:`FedBuff`.

    Attributes:
        x: Current server model x_k.
        version: k, the number of buffer flushes (server steps).
        transform_state: State of the server transform (e.g. momentum buffer).
        num_workers: n.
        rng: Stream for random assignment.
        total: Σ s(τ_i) Δ_i over the buffer (``None`` when empty or timing-only).
        count: Number of deltas in the buffer (< K).
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    rng: np.random.Generator
    total: Vector | None = None
    count: int = 0


@dataclass(frozen=True)
class FedBuff(PolicyBase[FedBuffState]):
    """Buffered asynchronous aggregation (see module docstring).

    Args:
        buffer_size: K >= 1 deltas per server step.
        server_transform: Server optimizer on the pseudo-gradient −mean(Δ),
            e.g. ``scale(η_g)``.
        staleness: Weight s(delay) of each delta (default: 1).
        max_staleness: Deltas with delay above it are discarded; ``None``: keep all.
        assign: ``"same"`` or ``"random"`` (as in :class:`AsyncSGD`).
        name: Label used in reports.

    Attributes:
        payload: ``"delta"``: jobs must return Δ (``local_sgd_task(output=...)``).
    """

    buffer_size: int
    server_transform: GradientTransform
    staleness: StalenessFn = field(default_factory=ConstantStaleness)
    max_staleness: int | None = None
    assign: Assign = "same"
    name: str = "fedbuff"
    payload: Literal["delta"] = field(default="delta", init=False)

    def __post_init__(self) -> None:
        k = self.buffer_size
        if not (isinstance(k, int | np.integer) and not isinstance(k, bool) and k >= 1):
            raise ConfigError(f"buffer_size (K) must be an integer >= 1, got {k}")
        m = self.max_staleness
        if m is not None and not (isinstance(m, int | np.integer) and m >= 0):
            raise ConfigError(f"max_staleness must be an integer >= 0 or None, got {m}")
        check_assign(self.assign)

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> FedBuffState:
        n = check_num_workers(num_workers)
        return FedBuffState(x0, 0, self.server_transform.init(x0), n, rng)

    def on_arrival(
        self, state: FedBuffState, arrival: Arrival
    ) -> tuple[FedBuffState, Reply]:
        delay = state.version - arrival.version
        nxt = next_worker(self.assign, state, arrival.worker)
        if self.max_staleness is not None and delay > self.max_staleness:
            return state, Reply(applied=False, discarded=True, dispatch=nxt)
        delta = arrival.payload
        info = payload_info(delta, "delta_norm")
        if info is None:
            return state, skipped_reply(arrival.worker, nxt)
        total = state.total
        if delta is not None:
            weight = self.staleness(delay)
            info["staleness_weight"] = weight
            weighted = delta if weight == 1.0 else weight * delta
            total = weighted.copy() if total is None else total + weighted
        count = state.count + 1
        if count < self.buffer_size:
            new = FedBuffState(
                state.x,
                state.version,
                state.transform_state,
                state.num_workers,
                state.rng,
                total,
                count,
            )
            return new, Reply(applied=False, dispatch=nxt, info=info)
        # None: timing-only run, advance the version only
        pseudo_grad = None if total is None else -(total / self.buffer_size)
        x, ts = aggregate_step(self.server_transform, state, pseudo_grad, info)
        new = FedBuffState(x, state.version + 1, ts, state.num_workers, state.rng)
        return new, Reply(applied=True, dispatch=nxt, info=info)

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "FedBuff",
            "buffer_size": self.buffer_size,
            "staleness": self.staleness.to_config(),
            "max_staleness": self.max_staleness,
            "assign": self.assign,
        }
