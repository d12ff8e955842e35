"""What the real pools share: one job = injected straggler time + one oracle call.

:class:`OracleWorker` is what a thread of :class:`~clipasync.runtime.LocalPool` and an
actor of :class:`~clipasync.runtime.RayPool` hold. It draws a job's compute time from
the worker's own ``TIMING`` stream and the payload from its own ``ORACLE`` stream,
exactly as :class:`~clipasync.sim.SimulatedPool` does, so a real pool and the
simulator see the same numbers job by job; :meth:`OracleWorker.run_job` runs one job
(the injected sleep, which a cancel ends early, then the oracle) the same way in a
thread and in an actor.

Its random streams can be exported as plain JSON data (:meth:`OracleWorker.streams`)
and restored, so a replacement worker (after a crash) or a resumed run continues the
streams where the last finished job left them.

The pool side shares :func:`pool_size` (the checks of a pool's size, time unit and
stream states) and :func:`check_worker`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from clipasync.errors import ConfigError, SimulationExhausted
from clipasync.problems import make_problem
from clipasync.seeding import Stream, stream
from clipasync.sim.pool import TimeSampler
from clipasync.timing import ComputeTimeModel
from clipasync.types import Seed, Task, Vector

#: JSON-able state of one worker's random streams (see :meth:`OracleWorker.streams`).
StreamState = dict[str, Any]

#: A picklable zero-argument callable that builds a task inside the worker process
#: (so a large data set is built where it is used instead of being shipped).
TaskFactory = Callable[[], Task]


@dataclass(frozen=True)
class ProblemTask:
    """Task factory for a registered problem: ``problem.stochastic_grad(x, rng, w)``.

    The problem is built inside the worker (thread or Ray actor) from this small,
    picklable spec, which is what keeps data sets off the wire.

    Args:
        name: A key of :data:`clipasync.problems.PROBLEMS`.
        kwargs: The factory's keyword arguments.
        noise: Optional noise spec (see :func:`clipasync.problems.make_problem`).
    """

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    noise: tuple[tuple[str, Any], ...] | None = None

    @classmethod
    def of(
        cls, name: str, noise: dict[str, Any] | None = None, **kwargs: Any
    ) -> ProblemTask:
        """Build a spec from keyword arguments (kept as sorted tuples: hashable)."""
        frozen_noise = None if noise is None else tuple(sorted(noise.items()))
        return cls(name, tuple(sorted(kwargs.items())), frozen_noise)

    def __call__(self) -> Task:
        noise = None if self.noise is None else dict(self.noise)
        problem = make_problem(self.name, noise=noise, **dict(self.kwargs))

        def task(worker: int, x: Vector, rng: np.random.Generator) -> Vector:
            return problem.stochastic_grad(x, rng, worker)

        return task


def _fast_forward(sampler: TimeSampler, worker: int, jobs: int) -> None:
    # The timing state is the number of jobs drawn: replaying them on a fresh sampler
    # reproduces its stream exactly (O(jobs), ~1 µs each) without reading the
    # simulator's private buffers. Every model draws the same amount per job whatever
    # ``now`` is, so replaying at now=0 leaves the stream where it was.
    for _ in range(jobs):
        sampler.next(worker, 0.0)


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What became of one job on its worker (see :meth:`OracleWorker.run_job`).

    Attributes:
        status: ``"ok"``, ``"cancelled"`` (during its injected sleep, before the
            oracle), ``"timed_out"`` (its injected time exceeded its time limit: it
            slept the limit and never called the oracle) or ``"exhausted"`` (the
            worker's replayed trace ran out).
        payload: The oracle's result (``None`` unless ``"ok"``, or timing-only).
        seconds: Measured time on the worker, sleep and oracle (0 unless ``"ok"``
            or ``"timed_out"``).
    """

    status: Literal["ok", "cancelled", "timed_out", "exhausted"]
    payload: Vector | None = None
    seconds: float = 0.0


class OracleWorker:
    """One worker's oracle and straggler clock (no threads, no Ray here).

    Args:
        task: ``task(worker, x, rng) -> payload``.
        worker: Index of this worker.
        seed: Root seed of the run (the ``ORACLE`` and ``TIMING`` streams).
        timing: Compute-time model, or ``None`` for no injected time.
        streams: Stream state to continue from (see :meth:`streams`); ``None``
            starts the streams fresh from ``seed``.
    """

    def __init__(
        self,
        task: Task,
        worker: int,
        seed: Seed,
        timing: ComputeTimeModel | None,
        streams: StreamState | None = None,
    ) -> None:
        self.task = task
        self.worker = worker
        self._seed = seed
        self.rng = stream(seed, Stream.ORACLE, worker)
        self._sampler = None if timing is None else TimeSampler(timing, seed)
        self._jobs = 0
        #: Whether the replayed trace ran out (the worker then runs no more jobs).
        self.exhausted = False
        if streams is not None:
            self.rng.bit_generator.state = streams["oracle"]
            self._jobs = int(streams.get("timing_jobs", 0))
            if self._sampler is not None:
                _fast_forward(self._sampler, worker, self._jobs)

    def next_time(self, now: float) -> float | None:
        """Return the next job's injected compute time (model units; 0 without a
        model), or ``None`` when a replayed trace is exhausted."""
        if self._sampler is None:
            return 0.0
        try:
            t = self._sampler.next(self.worker, now)
        except SimulationExhausted:
            return None
        self._jobs += 1
        return t

    def compute(self, x: Vector) -> Vector:
        """Return the job's payload at ``x`` (draws from the oracle stream)."""
        return self.task(self.worker, x, self.rng)

    def run_job(
        self,
        x: Vector | None,
        now: float,
        cancelled: threading.Event,
        time_unit_s: float,
        time_limit: float | None = None,
    ) -> JobOutcome:
        """Run one job: sleep its injected compute time, then compute at ``x``.

        Args:
            x: The model (``None``: timing-only, no oracle call).
            now: Start of the job in the timing model's units.
            cancelled: Set when the job is cancelled; it ends the sleep at once and
                the oracle is then never called (as in the simulator).
            time_unit_s: Seconds per time unit of the timing model.
            time_limit: Abandon a job whose injected time exceeds this many units
                after sleeping exactly that long (real compute is not limited).
        """
        if self.exhausted:
            return JobOutcome("exhausted")
        start = time.perf_counter()
        units = self.next_time(now)
        if units is None:
            self.exhausted = True
            return JobOutcome("exhausted")
        timed_out = time_limit is not None and units > time_limit
        if time_limit is not None and timed_out:
            units = time_limit
        # Event.wait returns early (True) when the job is cancelled mid-sleep.
        if (units > 0 and cancelled.wait(units * time_unit_s)) or cancelled.is_set():
            return JobOutcome("cancelled")
        if timed_out:
            return JobOutcome("timed_out", None, time.perf_counter() - start)
        payload = None if x is None else self.compute(x)
        return JobOutcome("ok", payload, time.perf_counter() - start)

    def streams(self) -> StreamState:
        """Return the state of both streams as JSON-able data."""
        return {"oracle": self.rng.bit_generator.state, "timing_jobs": self._jobs}


def pool_size(
    num_workers: int | None,
    timing: ComputeTimeModel | None,
    time_unit_s: float,
    streams: Sequence[StreamState | None] | None,
) -> int:
    """Return the number of workers of a real pool, checking its arguments.

    The size is ``timing.num_workers`` when there is a timing model (``num_workers``
    must then agree or be ``None``), else ``num_workers``.

    Raises:
        ConfigError: On a bad or disagreeing size, a time unit that is not
            positive, or stream states that do not list one entry per worker.
    """
    if timing is not None:
        if num_workers is not None and num_workers != timing.num_workers:
            raise ConfigError(
                f"num_workers={num_workers} disagrees with the timing model's "
                f"{timing.num_workers} workers"
            )
        n = timing.num_workers
    elif num_workers is None or not (isinstance(num_workers, int) and num_workers >= 1):
        raise ConfigError(f"num_workers must be an integer >= 1, got {num_workers}")
    else:
        n = num_workers
    if not (time_unit_s > 0):
        raise ConfigError(f"time_unit_s must be positive, got {time_unit_s}")
    if streams is not None and len(streams) != n:
        raise ConfigError(f"streams must list {n} workers, got {len(streams)}")
    return n


def check_worker(worker: int, num_workers: int) -> None:
    """Raise :class:`ConfigError` unless ``0 <= worker < num_workers``."""
    if not 0 <= worker < num_workers:
        raise ConfigError(f"worker must be in [0, {num_workers}), got {worker}")
