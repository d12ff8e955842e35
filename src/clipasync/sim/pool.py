"""Deterministic discrete-event simulator of a pool of workers.

:class:`SimulatedPool` implements the ``WorkerPool`` interface on a virtual clock:
jobs finish at ``start + compute_time`` where the compute time comes from a
:mod:`clipasync.timing` model. Events live in a heap keyed ``(finish_time, seq)``:
``seq`` increases with every job start, so simultaneous finishes come out in the
order their jobs started, the same way on every run (SimPy's tie-break). With
``tie_break="worker"`` they come out by worker index instead (the key is
``(finish_time, worker, job)``; a worker runs one job at a time), the order of
simulators that keep one heap entry per worker, such as the public Tyurin–Richtárik
simulators, so that their tie-sensitive counts can be matched exactly.

Each worker runs one job at a time and keeps a FIFO queue of submitted jobs (the
paper's Algorithm 2 queues jobs at busy workers). A job's gradient is computed when it
finishes, at the model it was submitted with, drawing from that worker's own oracle
stream; since a worker finishes its jobs in submission order, the draws are the same
whatever the interleaving with other workers.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError, SimulationExhausted
from clipasync.seeding import Stream, root_sequence, stream
from clipasync.timing import ComputeTimeModel, FixedTimes, TraceTimes
from clipasync.types import Arrival, Seed, Task, Vector

#: How simultaneous finishes are ordered: by job start (the default) or worker index.
TieBreak = Literal["start", "worker"]
TIE_BREAKS: tuple[TieBreak, ...] = ("start", "worker")

# Compute times are drawn in vectorised blocks per worker; blocks start small and
# double, so 10,000 workers that each run a few jobs do not draw 256 times each.
_FIRST_BLOCK = 32
_MAX_BLOCK = 256


class WorkerStreams:
    """One random stream per worker for one purpose, each made at its first use (so
    10,000 workers that never run cost nothing).

    ``streams(worker)`` returns ``stream(seed, purpose, worker)``, the same generator
    on every call.
    """

    __slots__ = ("_purpose", "_rngs", "_seed")

    def __init__(self, seed: Seed, purpose: Stream, num_workers: int) -> None:
        self._seed = seed
        self._purpose = purpose
        self._rngs: list[np.random.Generator | None] = [None] * num_workers

    def __call__(self, worker: int) -> np.random.Generator:
        rng = self._rngs[worker]
        if rng is None:
            rng = self._rngs[worker] = stream(self._seed, self._purpose, worker)
        return rng

    def peek(self, worker: int) -> np.random.Generator | None:
        """Return ``worker``'s stream if it was made, else ``None`` (no side effect)."""
        return self._rngs[worker]

    def restore(self, worker: int, state: dict[str, Any]) -> None:
        """Make ``worker``'s stream and set its bit-generator state to ``state``."""
        rng = stream(self._seed, self._purpose, worker)
        rng.bit_generator.state = state
        self._rngs[worker] = rng


class TimeSampler:
    """Draws compute times for each worker from its own stream, in job order.

    ``next(worker, now)`` is specialised once per model kind (it is the simulator's
    innermost call): fixed times need no stream at all, stationary models refill a
    per-worker buffer with one vectorised draw (checked once per block), and
    time-varying models draw one value at a time.
    """

    def __init__(self, model: ComputeTimeModel, seed: Seed) -> None:
        self.model = model
        n = model.num_workers
        # The root is hashed once; streams are made per worker.
        self._rng = WorkerStreams(root_sequence(seed), Stream.TIMING, n)
        # Per-worker state (public through worker_state / restore_worker).
        self._buffers: list[list[float]] = [[] for _ in range(n)]
        self._block = [_FIRST_BLOCK] * n
        self._jobs = [0] * n
        self.next: Callable[[int, float], float]
        if isinstance(model, FixedTimes):
            times = model.times
            self.next = lambda worker, now: times[worker]
        elif isinstance(model, TraceTimes):
            self.next = self._make_trace(model)
        elif model.stationary:
            self.next = self._make_buffered(model)
        else:
            self.next = self._make_scalar(model)

    def worker_state(self, worker: int) -> dict[str, Any]:
        """Return one worker's sampler state as plain JSON-able data (checkpoints)."""
        rng = self._rng.peek(worker)
        return {
            "rng": None if rng is None else rng.bit_generator.state,
            "buffer": list(self._buffers[worker]),
            "block": self._block[worker],
            "jobs": self._jobs[worker],
        }

    def restore_worker(self, worker: int, state: dict[str, Any]) -> None:
        """Continue one worker's draws from a :meth:`worker_state` snapshot."""
        if state["rng"] is not None:
            self._rng.restore(worker, state["rng"])
        self._buffers[worker] = [float(t) for t in state["buffer"]]
        self._block[worker] = int(state["block"])
        self._jobs[worker] = int(state["jobs"])

    def take_block(self, worker: int, check: bool = True) -> npt.NDArray[np.float64]:
        """Return ``worker``'s next times in bulk, in the order ``next`` gives them:
        what is left of its buffer, else one fresh block (stationary models only)."""
        buf = self._buffers[worker]
        self._jobs[worker] += len(buf) or self._block[worker]
        if buf:
            out = np.asarray(buf[::-1], dtype=np.float64)
            buf.clear()
            return out
        size = self._block[worker]
        self._block[worker] = min(2 * size, _MAX_BLOCK)
        block = self.model.sample_block(worker, self._rng(worker), size)
        if check:
            _check_times(block, worker)
        return block

    def _make_trace(self, model: TraceTimes) -> Callable[[int, float], float]:
        jobs = self._jobs

        def next_time(worker: int, now: float) -> float:
            t = model.job_time(worker, jobs[worker])
            jobs[worker] += 1
            return t

        return next_time

    def _make_buffered(self, model: ComputeTimeModel) -> Callable[[int, float], float]:
        buffers, sizes, jobs = self._buffers, self._block, self._jobs

        def next_time(worker: int, now: float) -> float:
            jobs[worker] += 1
            buf = buffers[worker]
            if not buf:
                size = sizes[worker]
                sizes[worker] = min(2 * size, _MAX_BLOCK)
                block = model.sample_block(worker, self._rng(worker), size)
                _check_times(block, worker)
                buf.extend(block[::-1].tolist())  # pop() from the end is O(1)
            return buf.pop()

        return next_time

    def _make_scalar(self, model: ComputeTimeModel) -> Callable[[int, float], float]:
        jobs = self._jobs

        def next_time(worker: int, now: float) -> float:
            jobs[worker] += 1
            t = model.sample(worker, now, self._rng(worker))
            _check_times(np.asarray([t]), worker)
            return t

        return next_time


def _check_times(times: npt.NDArray[np.float64], worker: int) -> None:
    # Two reductions instead of an elementwise mask: this runs once per block. A NaN
    # makes min() NaN, which fails the comparison too.
    if not (times.min() > 0.0 and times.max() < math.inf):
        bad = times[~(np.isfinite(times) & (times > 0))][0]
        raise ConfigError(
            f"compute time must be positive and finite, got {bad} for worker {worker}"
        )


@dataclass(slots=True)
class _Job:
    worker: int
    x: Vector | None
    version: int
    start: float = -1.0
    compute_time: float = 0.0
    cancelled: bool = False
    time_limit: float | None = None
    timed_out: bool = False


class SimulatedPool:
    """A ``WorkerPool`` on a virtual clock (see module docstring).

    Args:
        timing: Compute-time model; its ``num_workers`` is the pool size.
        task: Computes a job's payload; ``None`` for timing-only runs.
        seed: Root seed; the pool uses the ``TIMING`` and ``ORACLE`` streams.
        tie_break: Order of simultaneous finishes: ``"start"`` (job start order)
            or ``"worker"`` (worker index).
    """

    def __init__(
        self,
        timing: ComputeTimeModel,
        task: Task | None,
        seed: Seed,
        tie_break: TieBreak = "start",
    ) -> None:
        if tie_break not in TIE_BREAKS:
            raise ConfigError(
                f"tie_break must be 'start' or 'worker', got {tie_break!r}"
            )
        self._by_worker = tie_break == "worker"
        self.num_workers = timing.num_workers
        self._task = task
        self._sampler = TimeSampler(timing, seed)
        # The root is hashed once; per-worker streams derive from it.
        self._oracle_rng = WorkerStreams(
            root_sequence(seed), Stream.ORACLE, self.num_workers
        )
        self._heap: list[tuple[float, int, int]] = []
        self._jobs: dict[int, _Job] = {}
        self._queues: list[deque[int]] = [deque() for _ in range(self.num_workers)]
        self._running: list[int | None] = [None] * self.num_workers
        self._now = 0.0
        self._next_job = 0
        self._seq = 0
        #: Workers whose replayed trace ran out (they take no more jobs).
        self.exhausted_workers: set[int] = set()

    def now(self) -> float:
        return self._now

    def in_flight(self) -> int:
        """Number of submitted jobs not yet arrived or cancelled."""
        return len(self._jobs)

    #: ``submit`` takes ``time_limit`` (engine.TIME_LIMITS).
    supports_time_limits = True

    def submit(
        self,
        worker: int,
        x: Vector | None,
        version: int,
        time_limit: float | None = None,
    ) -> int:
        """Queue a job; with ``time_limit`` t, a job whose drawn compute time
        exceeds t is abandoned at start + t (it arrives ``timed_out``, without a
        payload and without an oracle draw)."""
        if not 0 <= worker < self.num_workers:
            raise ConfigError(
                f"worker must be in [0, {self.num_workers}), got {worker}"
            )
        job = self._next_job
        self._next_job += 1
        self._jobs[job] = _Job(worker, x, version, time_limit=time_limit)
        if self._running[worker] is None:
            self._start(job)
        else:
            self._queues[worker].append(job)
        return job

    def _start(self, job: int) -> None:
        j = self._jobs[job]
        j.start = self._now
        try:
            j.compute_time = self._sampler.next(j.worker, self._now)
        except SimulationExhausted:
            # A replayed trace has no more jobs for this worker: it stops working and
            # the job never runs; the run ends once every other job has arrived.
            self.exhausted_workers.add(j.worker)
            self._running[j.worker] = job
            return
        self._running[j.worker] = job
        if j.time_limit is not None and j.compute_time > j.time_limit:
            j.compute_time, j.timed_out = j.time_limit, True
        key = j.worker if self._by_worker else self._seq
        heapq.heappush(self._heap, (self._now + j.compute_time, key, job))
        self._seq += 1

    def _start_next(self, worker: int) -> None:
        self._running[worker] = None
        if self._queues[worker]:
            self._start(self._queues[worker].popleft())

    def cancel(self, job: int) -> None:
        """Drop a job: a queued one is removed, a running one frees its worker now."""
        j = self._jobs.pop(job, None)
        if j is None:
            return
        if self._running[j.worker] == job:
            j.cancelled = True  # its heap entry is skipped when popped
            self._start_next(j.worker)
        else:
            self._queues[j.worker].remove(job)

    def next_arrival(self) -> Arrival:
        heap = self._heap
        while heap:
            finish, _, job = heapq.heappop(heap)
            j = self._jobs.get(job)
            if j is None or j.cancelled:
                continue
            del self._jobs[job]
            self._now = finish
            w = j.worker
            self._start_next(w)
            payload = None
            if self._task is not None and j.x is not None and not j.timed_out:
                payload = self._task(w, j.x, self._oracle_rng(w))
            return Arrival(
                job, w, j.version, payload, finish, j.compute_time, j.timed_out
            )
        raise SimulationExhausted("no job in flight")

    def close(self) -> None:
        self._heap.clear()
        self._jobs.clear()
