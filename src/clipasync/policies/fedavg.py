"""Synchronous FedAvg / local SGD (McMahan et al. 2017): the federated synchronous
baseline of the asynchronous federated methods.

Each round k the server picks the participants S_k: every client, or
``clients_per_round`` (m) of the n drawn uniformly without replacement from the
policy's stream (McMahan et al.'s C·K). Each runs local SGD from x_k on its own shard
(:func:`~clipasync.problems.local_training.local_sgd_task`, Q = ``local_steps`` steps
of size η_l, the delta optionally clipped to ``client_max_norm``) and returns its
delta Δ_i = y_i − x_k. Once all of S_k have returned, the server steps

.. math::

    ĝ_k = -\\frac{1}{|S_k|} \\sum_{i \\in S_k} Δ_i, \\qquad x_{k+1} = x_k - T(ĝ_k),

with T the server optimiser of FedBuff (:func:`~clipasync.transforms.chains.
fedbuff_server`: optional clip, optional heavy-ball momentum, stepsize η_g). With
η_g = 1 and nothing else, x_{k+1} = x_k + mean Δ_i is the mean of the client models,
McMahan et al.'s FedAvg; η_g ≠ 1 is FedAvg with a server stepsize, β > 0 FedAvgM.
Then the next round's participants get x_{k+1}.

Note:
    McMahan et al. weight client i by its share n_i/n of the data; here the weights
    are equal (the shards of a partition are of equal size up to one row, and the
    objective clipasync optimises is f = (1/n) Σ f_i). A client whose delta is not
    finite runs again from x_k (the round waits), as in synchronous minibatch SGD.

References:
    McMahan, Moore, Ramage, Hampson & Agüera y Arcas (AISTATS 2017),
    "Communication-Efficient Learning of Deep Networks from Decentralized Data",
    Algorithm 1 (FederatedAveraging).
    Hsu, Qi & Brown (2019), "Measuring the Effects of Non-Identical Data Distribution
    for Federated Visual Classification" (FedAvgM, server momentum).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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
class FedAvgState:
    """State of :class:`FedAvg`.

    Attributes:
        x: Current server model x_k.
        version: k, the number of rounds completed.
        transform_state: State of the server transform.
        num_workers: n, the number of clients.
        rng: Stream of the client sampling.
        participants: S_k, in client order.
        returned: The clients of S_k whose delta arrived.
        total: Σ Δ_i over ``returned`` (``None``: none yet, or timing-only).
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    rng: np.random.Generator
    participants: tuple[int, ...]
    returned: tuple[int, ...] = ()
    total: Vector | None = None


@dataclass(frozen=True)
class FedAvg(PolicyBase[FedAvgState]):
    """Synchronous FedAvg: one server step per round of local training.

    Args:
        server_transform: Server optimiser on the pseudo-gradient −mean(Δ), e.g.
            ``scale(1.0)`` (plain FedAvg).
        clients_per_round: m clients drawn per round; ``None``: all n.
        name: Label used in reports.

    Attributes:
        payload: ``"delta"``: jobs return Δ (``local_sgd_task(output=...)``).
    """

    server_transform: GradientTransform
    clients_per_round: int | None = None
    name: str = "fedavg"
    payload: Literal["delta"] = field(default="delta", init=False)

    def __post_init__(self) -> None:
        m = self.clients_per_round
        if m is not None and (
            isinstance(m, bool) or not (isinstance(m, int) and m >= 1)
        ):
            raise ConfigError(
                f"clients_per_round must be an integer >= 1 or None, got {m}"
            )

    def _sample(self, rng: np.random.Generator, n: int) -> tuple[int, ...]:
        m = self.clients_per_round
        if m is None or m == n:
            return tuple(range(n))
        return tuple(sorted(int(i) for i in rng.choice(n, size=m, replace=False)))

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> FedAvgState:
        n = check_num_workers(num_workers)
        if self.clients_per_round is not None and self.clients_per_round > n:
            raise ConfigError(
                f"clients_per_round = {self.clients_per_round} exceeds the number "
                f"of clients ({n})"
            )
        ts = self.server_transform.init(x0)
        return FedAvgState(x0, 0, ts, n, rng, self._sample(rng, n))

    def start(self, state: FedAvgState) -> tuple[int, ...]:
        """The round's participants whose delta is missing get a job (all of them
        at the start of a run; after :meth:`restart`, the round goes on)."""
        return tuple(i for i in state.participants if i not in state.returned)

    def on_arrival(
        self, state: FedAvgState, arrival: Arrival
    ) -> tuple[FedAvgState, Reply]:
        w = arrival.worker
        delta = arrival.payload
        info = payload_info(delta, "delta_norm")
        if info is None:
            return state, skipped_reply(w)
        total = state.total
        if delta is not None:
            total = delta.copy() if total is None else total + delta
        returned = (*state.returned, w)
        if len(returned) < len(state.participants):
            new = FedAvgState(
                state.x,
                state.version,
                state.transform_state,
                state.num_workers,
                state.rng,
                state.participants,
                returned,
                total,
            )
            return new, Reply(applied=False, info=info)
        # None: timing-only run, x is kept
        pseudo_grad = None if total is None else -(total / len(returned))
        x, ts = aggregate_step(self.server_transform, state, pseudo_grad, info)
        participants = self._sample(state.rng, state.num_workers)
        new = FedAvgState(
            x, state.version + 1, ts, state.num_workers, state.rng, participants
        )
        return new, Reply(applied=True, dispatch=participants, info=info)

    def to_config(self) -> dict[str, Any]:
        return {"policy": "FedAvg", "clients_per_round": self.clients_per_round}
