"""FedAsync: staleness-weighted model mixing on every arrival (Xie et al. 2019).

Each job is one client's local training from the server model x_v of version v; the
client uploads its model x_client = x_v + Δ (``local_sgd_task(output="model")``, Δ
optionally clipped to ``client_max_norm``). On its arrival at server version k, with
delay τ = k − v:

.. math::

    α_k = α \\, s(τ), \\qquad x_{k+1} = (1 - α_k)\\, x_k + α_k \\, x_{\\text{client}},

with s a staleness function (constant, polynomial, hinge; see
:mod:`clipasync.policies.staleness`). With α s(τ) = 1 the server model is replaced by
the client's. Then the worker that returned (``assign="same"``) or a uniformly drawn
worker (``assign="random"``, FIFO-queued if busy, as Erickson & Johansson 2026,
Algorithm 2) gets a job at x_{k+1}.

Why the client uploads its model, not its delta: the mixing needs x_v + Δ, and x_v is
a *past* server model. Reconstructing it on the server would mean keeping one model
per version still in flight, up to n copies of the model, and knowing which versions
can still arrive, which an open system (:class:`~clipasync.sim.OpenSystemPool`)
or a pool that retries lost jobs does not tell the policy. Xie et al.'s clients upload
x_new, so this is also the paper's protocol, and the server needs no extra memory.

Note:
    Xie et al. also use a proximal term ρ/2 ‖y − x_v‖² in the local objective; here
    local training is plain SGD (a proximal variant would live in the task).

References:
    Xie, Koyejo & Gupta (2019), "Asynchronous Federated Optimization",
    arXiv:1903.03934, Algorithm 1 and §5.2 (staleness functions).
    Erickson & Johansson (2026), "Clipping Makes Distributed and Federated
    Asynchronous SGD Robust to Stragglers", Algorithm 2 (random assignment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from clipasync.errors import ConfigError
from clipasync.policies.base import (
    Assign,
    PolicyBase,
    check_assign,
    check_num_workers,
    checked_norm,
    next_worker,
    skipped_reply,
)
from clipasync.policies.staleness import ConstantStaleness, StalenessFn
from clipasync.types import Arrival, Reply, Vector


@dataclass(frozen=True, slots=True)
class FedAsyncState:
    """State of :class:`FedAsync`.

    Attributes:
        x: Current server model x_k.
        version: k, the number of arrivals mixed in so far.
        num_workers: n.
        rng: Stream for random assignment.
    """

    x: Vector
    version: int
    num_workers: int
    rng: np.random.Generator


@dataclass(frozen=True)
class FedAsync(PolicyBase[FedAsyncState]):
    """Asynchronous federated optimization by model mixing (see module docstring).

    Args:
        mixing: α in (0, 1].
        staleness: s(delay) in (0, 1] (default: 1).
        assign: ``"same"`` or ``"random"`` (as in :class:`AsyncSGD`).
        name: Label used in reports.

    Attributes:
        payload: ``"model"``: jobs return x_client (``local_sgd_task(output=...)``).
    """

    mixing: float
    staleness: StalenessFn = field(default_factory=ConstantStaleness)
    assign: Assign = "same"
    name: str = "fedasync"
    payload: Literal["model"] = field(default="model", init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mixing) and 0.0 < self.mixing <= 1.0):
            raise ConfigError(f"mixing (alpha) must be in (0, 1], got {self.mixing}")
        check_assign(self.assign)

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> FedAsyncState:
        return FedAsyncState(x0, 0, check_num_workers(num_workers), rng)

    def on_arrival(
        self, state: FedAsyncState, arrival: Arrival
    ) -> tuple[FedAsyncState, Reply]:
        delay = state.version - arrival.version
        nxt = next_worker(self.assign, state, arrival.worker)
        model = arrival.payload
        if model is None:  # timing-only run: advance the version, keep x
            new = FedAsyncState(
                state.x, state.version + 1, state.num_workers, state.rng
            )
            return new, Reply(applied=True, dispatch=nxt)
        if checked_norm(model) is None:
            return state, skipped_reply(arrival.worker, nxt)
        weight = self.staleness(delay)
        alpha = self.mixing * weight
        # (1 − α)x + α y, written so that α = 1 returns y exactly.
        x = model.copy() if alpha == 1.0 else (1.0 - alpha) * state.x + alpha * model
        new = FedAsyncState(x, state.version + 1, state.num_workers, state.rng)
        info = {"mixing": alpha, "staleness_weight": weight}
        return new, Reply(applied=True, dispatch=nxt, info=info)

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "FedAsync",
            "mixing": self.mixing,
            "staleness": self.staleness.to_config(),
            "assign": self.assign,
        }
