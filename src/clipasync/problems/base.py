"""The ``Problem`` protocol: an objective with an exact and a stochastic oracle.

Every problem exposes a flat parameter vector so that the pure algorithm layer only
ever sees numpy vectors. Federated problems additionally split their data into
per-worker shards: ``stochastic_grad(x, rng, worker=i)`` then samples from shard i.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from clipasync.types import Vector


@runtime_checkable
class Problem(Protocol):
    """An objective f(x) = E_ξ F(x; ξ) with oracles for the simulator and the runtime.

    Attributes:
        dim: Number of parameters d.
        name: Short name used in reports.
    """

    dim: int
    name: str

    def initial_point(self) -> Vector:
        """Return x_0 (deterministic: the same array on every call)."""
        ...

    def loss(self, x: Vector) -> float:
        """Return the full training objective f(x)."""
        ...

    def grad(self, x: Vector) -> Vector:
        """Return the full gradient ∇f(x)."""
        ...

    def stochastic_grad(
        self, x: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return an unbiased minibatch gradient at x drawn with ``rng``.

        ``worker`` selects the worker's data shard on federated (partitioned)
        problems and is ignored otherwise.
        """
        ...

    def evaluate(self, x: Vector) -> dict[str, float]:
        """Return metrics at x: always ``loss`` and ``grad_norm``; ``accuracy``,
        ``test_accuracy`` or ``perplexity`` where the problem defines them."""
        ...
