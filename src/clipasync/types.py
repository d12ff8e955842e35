"""Core value types shared by every layer: vectors, arrivals, replies.

Vocabulary (one word per concept in code, YAML, records and reports): ``version``
is the server iterate counter k, ``delay`` is the version at arrival minus the
version the job's model had, ``job`` is one oracle call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: A flat parameter or gradient vector (float64 for numpy problems, float32 for torch).
Vector = npt.NDArray[np.floating[Any]]

#: Anything that seeds a random stream.
Seed = int | np.random.SeedSequence

#: One job of a worker: ``task(worker, x, rng) -> payload`` (a stochastic gradient,
#: or a client's local-training result).
Task = Callable[[int, Vector, np.random.Generator], Vector]


@dataclass(frozen=True, slots=True)
class Arrival:
    """One finished job, as a pool hands it to the policy.

    Attributes:
        job: Job id, unique within a run (assigned by the pool at submission).
        worker: Worker that computed it.
        version: Server version of the model the job was computed at.
        payload: The job's result: a stochastic gradient (or a client delta for
            federated jobs); ``None`` in timing-only simulations.
        time: Arrival time (simulated time units, or wall-clock seconds on Ray).
        compute_time: Time the worker spent on this job (excludes queueing).
        timed_out: The job ran past the time limit it was submitted with and was
            abandoned there (``payload`` is then ``None``: no gradient was made).
    """

    job: int
    worker: int
    version: int
    payload: Vector | None
    time: float
    compute_time: float = 0.0
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class UpdateContext:
    """What a gradient transform may know about the gradient it is transforming.

    Attributes:
        step: Server version before this update (k).
        delay: Version at arrival minus version the gradient was computed at.
        worker: Worker that computed the gradient.
        num_workers: Number of workers n (the concurrency at full load).
        grad_norm: ‖normed‖ when the caller already computed it (saves a second
            pass over a large vector), else ``None``.
        normed: The vector ``grad_norm`` is the norm of. A transform may use
            ``grad_norm`` only for that very array (``g is ctx.normed``): in a
            chain, later transforms see other vectors and recompute.
    """

    step: int
    delay: int
    worker: int
    num_workers: int
    grad_norm: float | None = None
    normed: Vector | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A policy's answer to one arrival.

    Attributes:
        applied: The arrival changed the model (an update was applied).
        discarded: The arrival was thrown away on purpose (too stale, wrong version).
        skipped: The arrival was rejected because its payload was not finite.
        dispatch: Workers that get a new job at the model *after* this arrival.
        cancel: Workers whose in-flight job must be cancelled (its result dropped)
            before the dispatches are made.
        info: Telemetry for the recorder (``pre_clip_norm``, ``clipped``, ...).
    """

    applied: bool
    discarded: bool = False
    skipped: bool = False
    dispatch: tuple[int, ...] = ()
    cancel: tuple[int, ...] = ()
    info: dict[str, float] = field(default_factory=dict)
