"""The ``ServerPolicy`` protocol and helpers shared by every server rule.

A policy is a state machine that reacts to one arrival at a time:
``on_arrival(state, arrival) -> (state, reply)``. It never reads a clock, prints,
logs, touches files or talks to Ray, so the same object drives the simulator and the
Ray runtime (DESIGN.md §1).

Conventions (written once, used by every policy):

* ``delay = version at arrival − arrival.version``; the arriving job's own update is
  not counted, so with n jobs always in flight the mean delay is n − 1.
* A payload that is not finite (NaN/Inf) is *skipped*: counted in the reply, never
  applied, and the worker is re-dispatched so concurrency is kept.
* ``payload is None`` means a timing-only run: the policy advances its version as if
  it had applied an update and leaves x unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, TypeVar

import numpy as np

from clipasync.transforms import grad_norm
from clipasync.types import Arrival, Reply, Vector

S = TypeVar("S")


class ServerPolicy(Protocol[S]):
    """A server rule of an asynchronous method (see DESIGN.md §3)."""

    @property
    def name(self) -> str:
        """Label used in reports (policies are frozen dataclasses: read-only)."""
        ...

    def init(self, x0: Vector, num_workers: int, rng: np.random.Generator) -> S:
        """Return the initial state; ``rng`` drives any random choice of the policy."""
        ...

    def start(self, state: S) -> tuple[int, ...]:
        """Return the workers that get a job at x_0 when the run starts."""
        ...

    def on_arrival(self, state: S, arrival: Arrival) -> tuple[S, Reply]:
        """Consume one finished job and say what to do next."""
        ...

    def params(self, state: S) -> Vector:
        """Return the current iterate x_k (do not mutate it)."""
        ...

    def version(self, state: S) -> int:
        """Return k, the number of updates applied so far."""
        ...

    def to_config(self) -> dict[str, Any]:
        """Return the hyperparameters as plain data (for records)."""
        ...


def checked_norm(payload: Vector) -> float | None:
    """Return ‖payload‖, or ``None`` when the payload holds a NaN or an Inf.

    A finite vector whose squared norm overflows float64 also yields an infinite
    norm; it is treated as non-finite too, since no stepsize can apply it safely.
    """
    norm = grad_norm(payload)
    if math.isfinite(norm):
        return norm
    return None


def skipped_reply(worker: int, dispatch: tuple[int, ...] | None = None) -> Reply:
    """Reply for a non-finite payload: counted, not applied, worker re-dispatched."""
    return Reply(
        applied=False,
        skipped=True,
        dispatch=(worker,) if dispatch is None else dispatch,
        info={"nonfinite": 1.0},
    )
