"""Deterministic discrete-event simulator of a pool of workers.

:class:`SimulatedPool` implements the ``WorkerPool`` interface on a virtual clock:
jobs finish at ``start + compute_time`` where the compute time comes from a
:mod:`clipasync.timing` model. Events live in a heap keyed ``(finish_time, seq)``:
``seq`` increases with every job start, so simultaneous finishes come out in the
order their jobs started, the same way on every run (SimPy's tie-break).

Each worker runs one job at a time and keeps a FIFO queue of submitted jobs (the
paper's Algorithm 2 queues jobs at busy workers). A job's gradient is computed when it
finishes, at the model it was submitted with, drawing from that worker's own oracle
stream; since a worker finishes its jobs in submission order, the draws are the same
whatever the interleaving with other workers.

:func:`simulate_timing` is a fast path that needs no gradients: it answers "how many
updates per time unit and what delays" for a timing model under Algorithm 1.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError, SimulationExhausted
from clipasync.seeding import Stream, root_sequence, stream
from clipasync.timing import ComputeTimeModel, FixedTimes, TraceTimes
from clipasync.types import Arrival, Seed, Vector

#: ``task(worker, x, rng) -> payload``: one job (a stochastic gradient, a client delta).
Task = Callable[[int, Vector, np.random.Generator], Vector]

# Compute times are drawn in vectorised blocks per worker; blocks start small and
# double, so 10,000 workers that each run a few jobs do not draw 256 times each.
_FIRST_BLOCK = 32
_MAX_BLOCK = 256


class TimeSampler:
    """Draws compute times for each worker from its own stream, in job order.

    ``next(worker, now)`` is specialised once per model kind (it is the simulator's
    innermost call): fixed times need no stream at all, stationary models refill a
    per-worker buffer with one vectorised draw (checked once per block), and
    time-varying models draw one value at a time.
    """

    def __init__(self, model: ComputeTimeModel, seed: Seed) -> None:
        self.model = model
        self._seed = root_sequence(seed)  # hashed once: streams are made per worker
        n = model.num_workers
        self._rngs: list[np.random.Generator | None] = [None] * n
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

    def _rng(self, worker: int) -> np.random.Generator:
        rng = self._rngs[worker]
        if rng is None:
            rng = self._rngs[worker] = stream(self._seed, Stream.TIMING, worker)
        return rng

    def worker_state(self, worker: int) -> dict[str, Any]:
        """Return one worker's sampler state as plain JSON-able data (checkpoints)."""
        rng = self._rngs[worker]
        return {
            "rng": None if rng is None else rng.bit_generator.state,
            "buffer": list(self._buffers[worker]),
            "block": self._block[worker],
            "jobs": self._jobs[worker],
        }

    def restore_worker(self, worker: int, state: dict[str, Any]) -> None:
        """Continue one worker's draws from a :meth:`worker_state` snapshot."""
        if state["rng"] is not None:
            rng = stream(self._seed, Stream.TIMING, worker)
            rng.bit_generator.state = state["rng"]
            self._rngs[worker] = rng
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


class SimulatedPool:
    """A ``WorkerPool`` on a virtual clock (see module docstring).

    Args:
        timing: Compute-time model; its ``num_workers`` is the pool size.
        task: Computes a job's payload; ``None`` for timing-only runs.
        seed: Root seed; the pool uses the ``TIMING`` and ``ORACLE`` streams.
    """

    def __init__(self, timing: ComputeTimeModel, task: Task | None, seed: Seed) -> None:
        self.num_workers = timing.num_workers
        self._task = task
        self._seed = root_sequence(seed)  # hashed once; per-worker streams derive
        self._sampler = TimeSampler(timing, seed)
        self._oracle_rngs: list[np.random.Generator | None] = [None] * self.num_workers
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

    def submit(self, worker: int, x: Vector | None, version: int) -> int:
        if not 0 <= worker < self.num_workers:
            raise ConfigError(
                f"worker must be in [0, {self.num_workers}), got {worker}"
            )
        job = self._next_job
        self._next_job += 1
        self._jobs[job] = _Job(worker, x, version)
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
        heapq.heappush(self._heap, (self._now + j.compute_time, self._seq, job))
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
            if self._task is not None and j.x is not None:
                payload = self._task(w, j.x, self._oracle_rng(w))
            return Arrival(job, w, j.version, payload, finish, j.compute_time)
        raise SimulationExhausted("no job in flight")

    def _oracle_rng(self, worker: int) -> np.random.Generator:
        rng = self._oracle_rngs[worker]
        if rng is None:
            rng = self._oracle_rngs[worker] = stream(self._seed, Stream.ORACLE, worker)
        return rng

    def close(self) -> None:
        self._heap.clear()
        self._jobs.clear()


@dataclass(frozen=True)
class TimingSummary:
    """Outcome of :func:`simulate_timing`.

    Attributes:
        num_updates: Arrivals simulated (each one an update under Algorithm 1).
        end_time: Simulated time of the last arrival.
        updates_per_time: num_updates / end_time.
        delays: Delay of each update, in arrival order.
        workers: Worker of each update.
        times: Arrival time of each update.
    """

    num_updates: int
    end_time: float
    updates_per_time: float
    delays: npt.NDArray[np.int64]
    workers: npt.NDArray[np.int64]
    times: npt.NDArray[np.float64]

    def mean_delay(self, worker: int | None = None) -> float:
        """Mean delay over all updates, or over one worker's updates."""
        d = self.delays if worker is None else self.delays[self.workers == worker]
        return float(d.mean()) if d.size else float("nan")


def simulate_timing(
    timing: ComputeTimeModel, num_updates: int, seed: Seed = 0
) -> TimingSummary:
    """Simulate Algorithm 1 (every worker busy, re-dispatched on return) without
    gradients, and report update rate and delays.

    It draws the same compute times as :class:`SimulatedPool` for the same seed and
    breaks ties the same way, so its delays equal those of a full run with the same
    timing model (a test checks this).

    Two exact algorithms: under Algorithm 1 each worker is a renewal process
    independent of the others (worker i's j-th job ends at τ_{i,1} + … + τ_{i,j}), so
    for a stationary random model the event order is a sort of the per-worker partial
    sums, and the delay of an arrival is its rank minus the rank of the same worker's
    previous arrival minus one — all vectorised, a few million events per second
    whatever the number of workers. When two events share a finish time the order
    depends on the start-order tie-break, and the event loop (a heap) is used
    instead, about 10^6 events per second.

    Args:
        timing: Compute-time model.
        num_updates: Number of arrivals to simulate (> 0).
        seed: Root seed.
    """
    if num_updates <= 0:
        raise ConfigError(f"num_updates must be positive, got {num_updates}")
    if timing.stationary and not isinstance(timing, FixedTimes):
        summary = _simulate_renewal(timing, num_updates, seed)
        if summary is not None:
            return summary
    return _simulate_events(timing, num_updates, seed)


def _simulate_renewal(
    timing: ComputeTimeModel, num_updates: int, seed: Seed
) -> TimingSummary | None:
    """Vectorised Algorithm 1 for stationary models; ``None`` if finish times tie."""
    sampler = TimeSampler(timing, seed)
    n = timing.num_workers
    rate = float(np.sum(1.0 / timing.mean_times()))
    horizon = 1.2 * num_updates / rate
    finishes: list[npt.NDArray[np.float64]] = [np.empty(0)] * n
    while True:
        for w in range(n):
            f = finishes[w]
            last = float(f[-1]) if f.size else 0.0
            if f.size and last > horizon:
                continue
            parts = [f]
            while True:
                block = sampler.take_block(w, check=False)  # checked below, at once
                # Sequential sums, exactly as the event loop adds t + τ.
                sums = np.add.accumulate(np.concatenate(([last], block)))[1:]
                parts.append(sums)
                last = float(sums[-1])
                if not last <= horizon:  # (NaN also ends the loop; checked below)
                    break
            finishes[w] = np.concatenate(parts)  # once per pass: no quadratic copy
        counts = np.array(
            [int(np.searchsorted(f, horizon, side="right")) for f in finishes]
        )
        if counts.sum() >= num_updates + 1:
            break
        horizon *= 1.5
    times = np.concatenate([f[:c] for f, c in zip(finishes, counts, strict=True)])
    for w, f in enumerate(finishes):
        # Partial sums increase strictly iff every time is positive; NaN fails too.
        if not (f[0] > 0 and np.all(np.diff(f) > 0) and f[-1] < math.inf):
            _check_times(np.diff(np.concatenate(([0.0], f))), w)
    owner = np.repeat(np.arange(n), counts)
    job = np.concatenate([np.arange(c) for c in counts])
    order = np.argsort(times, kind="stable")[: num_updates + 1]
    t_sorted = times[order]
    if np.any(t_sorted[1:] == t_sorted[:-1]):
        return None  # a tie: the start-order tie-break decides, use the event loop
    order = order[:num_updates]
    times, workers, jobs = times[order], owner[order], job[order]
    # rank[flat index of (worker, job)] = position of that arrival in time order.
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    flat = offsets[workers] + jobs
    rank = np.full(int(counts.sum()), -1, dtype=np.int64)
    rank[flat] = np.arange(num_updates)
    k = np.arange(num_updates)
    dispatched = np.where(jobs > 0, rank[np.maximum(flat - 1, 0)] + 1, 0)
    delays = (k - dispatched).astype(np.int64)
    end = float(times[-1])
    return TimingSummary(
        num_updates, end, num_updates / end, delays, workers.astype(np.int64), times
    )


def _simulate_events(
    timing: ComputeTimeModel, num_updates: int, seed: Seed
) -> TimingSummary:
    """Event-loop Algorithm 1 (exact with ties)."""
    nxt = TimeSampler(timing, seed).next
    n = timing.num_workers
    # A heap of distinct finish times (floats compare several times faster than
    # tuples) and, per finish time, the (worker, version at dispatch) entries in start
    # order: exactly the (finish, seq) tie-break of SimulatedPool.
    heap: list[float] = []
    due: dict[float, deque[tuple[int, int]]] = {}
    push, pop = heapq.heappush, heapq.heappop
    for w in range(n):
        t0 = nxt(w, 0.0)
        if t0 in due:
            due[t0].append((w, 0))
        else:
            due[t0] = deque(((w, 0),))
            push(heap, t0)
    delays = np.empty(num_updates, dtype=np.int64)
    workers = np.empty(num_updates, dtype=np.int64)
    times = np.empty(num_updates, dtype=np.float64)
    t = 0.0
    for k in range(num_updates):
        t = heap[0]
        entries = due[t]
        w, v = entries.popleft()
        if not entries:
            pop(heap)
            del due[t]
        delays[k] = k - v
        workers[k] = w
        times[k] = t
        finish = t + nxt(w, t)
        if finish in due:
            due[finish].append((w, k + 1))
        else:
            due[finish] = deque(((w, k + 1),))
            push(heap, finish)
    return TimingSummary(num_updates, t, num_updates / t, delays, workers, times)
