"""The ``ServerPolicy`` protocol and the parts shared by every server rule.

A policy is a state machine that reacts to one arrival at a time:
``on_arrival(state, arrival) -> (state, reply)``, the server loop of Erickson &
Johansson (2026), "Clipping Makes Distributed and Federated Asynchronous SGD Robust
to Stragglers" (arXiv 2606.13287), Algorithms 1 and 2. It never reads a clock,
prints, logs, touches files or talks to Ray, so the same object drives the simulator
and the Ray runtime.

Conventions (written once, used by every policy):

* ``delay = version at arrival − arrival.version``; the arriving job's own update is
  not counted, so with n jobs always in flight the mean delay is n − 1.
* A payload that is not finite (NaN/Inf) is *skipped*: counted in the reply, never
  applied, and the worker is re-dispatched so concurrency is kept.
* ``payload is None`` means a timing-only run: the policy advances its version as if
  it had applied an update and leaves x unchanged.
* After every job in flight was lost (a resumed run), the run continues from
  ``restart(state)`` and dispatches ``start`` of that state.

:class:`PolicyBase` writes ``start``, ``params``, ``version`` and ``restart`` once for
states that hold ``x``, ``version`` and ``num_workers``; :func:`next_worker` is the
job assignment of Algorithms 1 (``"same"``) and 2 (``"random"``).
"""

from __future__ import annotations

import math
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np

from clipasync.errors import ConfigError
from clipasync.transforms.base import GradientTransform
from clipasync.transforms.clipping import grad_norm
from clipasync.types import Arrival, Reply, UpdateContext, Vector

S = TypeVar("S")

#: Who gets the next job: the worker that returned (Algorithm 1) or a uniformly
#: drawn one, FIFO-queued if busy (Algorithm 2).
Assign = Literal["same", "random"]


class ServerPolicy(Protocol[S]):
    """A server rule of an asynchronous method (arXiv 2606.13287, Algorithms 1–2)."""

    @property
    def name(self) -> str:
        """Label used in reports (policies are frozen dataclasses: read-only)."""
        ...

    def init(self, x0: Vector, num_workers: int, rng: np.random.Generator) -> S:
        """Return the initial state; ``rng`` drives any random choice of the policy."""
        ...

    def start(self, state: S) -> tuple[int, ...]:
        """Return the workers that get a job at the current model when a run starts
        (or continues from :meth:`restart`)."""
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

    def restart(self, state: S) -> S:
        """Return the state to continue from once every job in flight is lost (a
        resumed run): iterate, version and random stream are kept; the run then
        dispatches :meth:`start` of the returned state."""
        ...

    def to_config(self) -> dict[str, Any]:
        """Return the hyperparameters as plain data (for records)."""
        ...


class CoreState(Protocol):
    """What every policy state holds (read-only)."""

    @property
    def x(self) -> Vector:
        """The current iterate x_k."""
        ...

    @property
    def version(self) -> int:
        """k, the number of updates applied so far."""
        ...

    @property
    def num_workers(self) -> int:
        """n, the number of workers."""
        ...


class RandomState(CoreState, Protocol):
    """A state that also holds the policy's random stream (random assignment)."""

    @property
    def rng(self) -> np.random.Generator:
        """The stream of random assignment."""
        ...


class StepState(CoreState, Protocol):
    """A state that also holds its transform's state."""

    @property
    def transform_state(self) -> Any:
        """The state of the policy's gradient transform."""
        ...


C = TypeVar("C", bound=CoreState)


class PolicyBase(Generic[C]):
    """``start``, ``params``, ``version`` and ``restart`` of a policy whose state is a
    :class:`CoreState`; a policy overrides what it does differently."""

    def start(self, state: C) -> tuple[int, ...]:
        """Every worker gets a job at x_k."""
        return tuple(range(state.num_workers))

    def params(self, state: C) -> Vector:
        return state.x

    def version(self, state: C) -> int:
        return state.version

    def restart(self, state: C) -> C:
        """The state is valid as it is once its jobs are lost."""
        return state


def check_num_workers(num_workers: int) -> int:
    """Return ``num_workers``, or raise :class:`ConfigError` if it is below 1."""
    if num_workers < 1:
        raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
    return num_workers


def check_count(label: str, value: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer >= 1 (a bool is
    not); ``label`` names it in the message, e.g. ``"quorum (m)"``."""
    if isinstance(value, bool) or not (isinstance(value, int) and value >= 1):
        raise ConfigError(f"{label} must be an integer >= 1, got {value}")


def check_assign(assign: str) -> None:
    """Raise :class:`ConfigError` unless ``assign`` is ``"same"`` or ``"random"``."""
    if assign not in ("same", "random"):
        raise ConfigError(f"assign must be 'same' or 'random', got {assign!r}")


def next_worker(assign: Assign, state: RandomState, worker: int) -> tuple[int, ...]:
    """Return the worker of the next job after ``worker``'s arrival.

    ``"same"``: ``worker`` itself (Algorithm 1); ``"random"``: one drawn uniformly
    from all n with ``state.rng`` (Algorithm 2; uniform sampling keeps the scheduled
    oracle conditionally unbiased for ∇f = (1/n) Σ ∇f_i).
    """
    if assign == "same":
        return (worker,)
    return (int(state.rng.integers(state.num_workers)),)


def checked_norm(payload: Vector) -> float | None:
    """Return ‖payload‖, or ``None`` when the payload holds a NaN or an Inf.

    A finite vector whose squared norm overflows float64 also yields an infinite
    norm; it is treated as non-finite too, since no stepsize can apply it safely.
    """
    norm = grad_norm(payload)
    if math.isfinite(norm):
        return norm
    return None


def payload_info(
    payload: Vector | None, key: str = "pre_clip_norm"
) -> dict[str, float] | None:
    """Return an arrival's telemetry ``{key: ‖payload‖}`` (``{}`` for a timing-only
    arrival, ``payload is None``), or ``None`` when the payload is non-finite
    (:func:`checked_norm`): the caller then replies with :func:`skipped_reply`."""
    info: dict[str, float] = {}
    if payload is not None:
        norm = checked_norm(payload)
        if norm is None:
            return None
        info[key] = norm
    return info


def aggregate_step(
    transform: GradientTransform,
    state: StepState,
    direction: Vector | None,
    info: dict[str, float],
) -> tuple[Vector, Any]:
    """Return ``(x_k − u, ts')`` with ``(u, ts') = T(direction, ts)``: a server step
    with an aggregate of several arrivals (a mean of gradients, a pseudo-gradient),
    so at delay 0 and from no one worker (``worker = −1``); ``info`` gains the
    transform's telemetry. ``direction is None`` (timing-only): x_k and ts kept."""
    if direction is None:
        return state.x, state.transform_state
    ctx = UpdateContext(state.version, 0, -1, state.num_workers)
    u, ts, step_info = transform.update(direction, state.transform_state, ctx)
    info.update(step_info)
    return state.x - u, ts


def skipped_reply(worker: int, dispatch: tuple[int, ...] | None = None) -> Reply:
    """Reply for a non-finite payload: counted, not applied, worker re-dispatched."""
    return Reply(
        applied=False,
        skipped=True,
        dispatch=(worker,) if dispatch is None else dispatch,
        info={"nonfinite": 1.0},
    )
