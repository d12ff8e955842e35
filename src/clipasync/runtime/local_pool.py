"""An in-process ``WorkerPool`` on the wall clock: one thread per worker.

:class:`LocalPool` runs every job in a worker thread, for real: the thread sleeps the
job's injected compute time (drawn from the worker's ``TIMING`` stream, scaled by
``time_unit_s``), then computes the payload with the worker's ``ORACLE`` stream. It is
the smallest real pool, and it proves that the algorithm layer is shared: with
scripted, well-separated compute times (``TraceTimes``) it yields the same arrival
order, hence bit-identical iterates, as :class:`~clipasync.sim.SimulatedPool`.

Semantics match the simulator's:

* each worker runs its jobs one at a time in submission order (FIFO);
* a cancelled queued job never runs; a cancelled running job stops its injected
  sleep at once (the worker is free now) and never calls the oracle, so a cancelled
  job draws from the timing stream but never from the oracle stream;
* ``Arrival.time`` is wall-clock seconds since the pool started, read when the
  driver receives the result; ``Arrival.compute_time`` is the job's measured time on
  its worker (sleep + oracle), excluding queueing.

Real compute runs in threads, so it overlaps only where numpy/torch release the GIL;
for CPU-heavy tasks use :class:`~clipasync.runtime.RayPool` (processes).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from clipasync.errors import SimulationExhausted
from clipasync.runtime._oracle import OracleWorker, StreamState, check_worker, pool_size
from clipasync.timing import ComputeTimeModel
from clipasync.types import Arrival, Seed, Task, Vector


@dataclass(slots=True)
class _Job:
    job: int
    worker: int
    version: int
    x: Vector | None
    cancelled: threading.Event = field(default_factory=threading.Event)
    time_limit: float | None = None


@dataclass(frozen=True, slots=True)
class _Result:
    job: int
    payload: Vector | None
    compute_time: float
    exhausted: bool = False
    error: BaseException | None = None
    timed_out: bool = False


class LocalPool:
    """A wall-clock ``WorkerPool`` running jobs in threads (see module docstring).

    Args:
        task: ``task(worker, x, rng) -> payload``, called in the worker's thread.
        num_workers: Number of workers (defaults to ``timing.num_workers``).
        timing: Injected compute-time model, or ``None`` for none.
        time_unit_s: Seconds per time unit of ``timing``.
        seed: Root seed (the ``ORACLE`` and ``TIMING`` streams, as in the simulator).
        streams: Per-worker stream states to continue from (resume).

    Raises:
        ConfigError: On a bad size or time unit.
    """

    def __init__(
        self,
        task: Task,
        num_workers: int | None = None,
        *,
        timing: ComputeTimeModel | None = None,
        time_unit_s: float = 1.0,
        seed: Seed = 0,
        streams: list[StreamState | None] | None = None,
    ) -> None:
        n = pool_size(num_workers, timing, time_unit_s, streams)
        self.num_workers = n
        self.time_unit_s = float(time_unit_s)
        self.failures = 0  # threads do not die; kept for parity with RayPool
        self._oracles = [
            OracleWorker(task, w, seed, timing, None if streams is None else streams[w])
            for w in range(n)
        ]
        self._queues: list[queue.SimpleQueue[_Job | None]] = [
            queue.SimpleQueue() for _ in range(n)
        ]
        self._results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self._jobs: dict[int, _Job] = {}  # live: submitted, not arrived nor cancelled
        self._next_job = 0
        self._last_streams: list[StreamState] = [o.streams() for o in self._oracles]
        self._t0 = time.perf_counter()
        self._threads = [
            threading.Thread(target=self._work, args=(w,), daemon=True, name=f"w{w}")
            for w in range(n)
        ]
        for t in self._threads:
            t.start()

    def now(self) -> float:
        return time.perf_counter() - self._t0

    #: ``submit`` takes ``time_limit`` (engine.TIME_LIMITS), on the injected times.
    supports_time_limits = True

    def submit(
        self,
        worker: int,
        x: Vector | None,
        version: int,
        time_limit: float | None = None,
    ) -> int:
        """Queue a job; with ``time_limit`` (time units) a job whose injected time
        exceeds it sleeps the limit, never calls the oracle and arrives
        ``timed_out``, as in the simulator."""
        check_worker(worker, self.num_workers)
        job = _Job(self._next_job, worker, version, x, time_limit=time_limit)
        self._next_job += 1
        self._jobs[job.job] = job
        self._queues[worker].put(job)
        return job.job

    def cancel(self, job: int) -> None:
        j = self._jobs.pop(job, None)
        if j is not None:
            j.cancelled.set()

    def next_arrival(self) -> Arrival:
        while self._jobs:
            r = self._results.get()
            if r.error is not None:
                raise r.error
            j = self._jobs.pop(r.job, None)
            if j is None or r.exhausted:  # cancelled, or its worker's trace ran out
                continue
            return Arrival(
                j.job,
                j.worker,
                j.version,
                r.payload,
                self.now(),
                r.compute_time,
                r.timed_out,
            )
        raise SimulationExhausted("no job in flight")

    def stream_states(self) -> list[StreamState]:
        """Return each worker's stream state after its last finished job."""
        return [dict(s) for s in self._last_streams]

    def close(self) -> None:
        for j in self._jobs.values():
            j.cancelled.set()
        self._jobs.clear()
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join(timeout=5.0)

    def _work(self, worker: int) -> None:
        oracle = self._oracles[worker]
        q = self._queues[worker]
        while (job := q.get()) is not None:
            if job.cancelled.is_set():
                continue
            try:
                now = (time.perf_counter() - self._t0) / self.time_unit_s
                out = oracle.run_job(
                    job.x, now, job.cancelled, self.time_unit_s, job.time_limit
                )
            except BaseException as exc:  # surface task errors in the driver
                self._results.put(_Result(job.job, None, 0.0, error=exc))
                continue
            if out.status == "cancelled":
                continue
            if out.status == "ok":
                self._last_streams[worker] = oracle.streams()
            exhausted = out.status == "exhausted"
            timed_out = out.status == "timed_out"
            self._results.put(
                _Result(job.job, out.payload, out.seconds, exhausted, None, timed_out)
            )
