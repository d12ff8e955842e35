"""Client availability: clients that vanish mid-job, and an open system of clients.

Two pools that plug into :func:`clipasync.engine.run` without changing the policy or
the simulator.

**Unreliable clients** (:class:`UnreliablePool`) wrap any ``WorkerPool``. When a job
finishes in the inner pool, a :class:`DropoutModel` decides whether its client was
gone for part of the job's interval [start, finish); if so the result is lost: the
wrapper counts it (``lost_jobs``) and at once restarts the *same job* (same worker,
same model x_v, same version v, same job id) in the inner pool. The policy never sees
the lost result; it sees the job arrive later, with a larger delay. Semantics:

* the run goes on and concurrency is kept (the worker is never left idle);
* nothing else changes: other workers, the policy's random draws and its state are
  exactly those of a run where that job simply took ``lost time + retry time``
  (a test checks this against such a scripted run);
* the loss is detected when the result was due (as a server time-out would), so a
  lost job costs its whole compute time, and the arrival's ``compute_time`` is the
  sum over its attempts.

Restarting at x_v rather than at the newest model keeps every policy's bookkeeping
valid (``arrival.version`` is the model the payload was computed at, and the job the
policy dispatched is the job that arrives). Two consequences are documented rather
than hidden: the inner pool computes the lost result (so a stochastic worker consumes
that job's oracle draws, as a real client that trained and vanished did), and with
FIFO queues (Algorithm 2) the retry joins the back of its worker's queue.

**Open system** (:class:`OpenSystemPool`): jobs start at the times of a Poisson
process of rate λ, each on a client drawn uniformly from the population, at the newest
server model, as in FLSim's asynchronous simulator; concurrency is not set by the
policy but emerges, with mean λ·E[τ] by Little's law (an M/G/∞ queue). The policy's
``dispatch`` only tells the pool the newest model. Its optional ``dropout`` loses jobs
without retrying them (the next job comes from the Poisson stream anyway).

Which attempts are lost is a dropout model of :mod:`clipasync.sim.dropout`.

References:
    Nguyen et al. (AISTATS 2022), "Federated Learning with Buffered Asynchronous
    Aggregation" (simulated with FLSim); FLSim's
    ``PoissonAsyncTrainingStartTimeDistr``
    (``flsim/utils/async_trainer/training_event_generator.py``).
    Little (1961), "A Proof for the Queuing Formula L = λW".
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

from clipasync.engine import WorkerPool
from clipasync.errors import ConfigError, SimulationExhausted, WorkerFailed
from clipasync.seeding import Stream, stream
from clipasync.sim.dropout import DropoutModel, check_phases, make_dropout
from clipasync.sim.pool import TimeSampler, WorkerStreams
from clipasync.timing import ComputeTimeModel
from clipasync.types import Arrival, Seed, Task, Vector

# ``make_dropout`` is re-exported for the config code that builds these pools.
__all__ = ["OpenSystemPool", "UnreliablePool", "make_dropout"]

# ---------------------------------------------------------------- unreliable clients


@dataclass(slots=True)
class _Tracked:
    worker: int
    x: Vector
    version: int
    inner: int
    losses: int = 0
    lost_time: float = 0.0


class UnreliablePool:
    """A ``WorkerPool`` whose clients may vanish mid-job (see module docstring).

    Args:
        inner: Any pool, e.g. a :class:`~clipasync.sim.SimulatedPool`.
        dropout: Which attempts are lost.
        seed: Root seed; the wrapper draws from the ``AVAILABILITY`` stream of each
            worker, so losses never perturb the inner pool's streams.
        max_losses_per_job: Give up (raise :class:`~clipasync.errors.WorkerFailed`)
            after this many consecutive losses of one job, e.g. when a job is longer
            than a client's online window.

    Attributes:
        lost_jobs: Number of lost attempts.
        lost_by_worker: Lost attempts per worker.
        lost_compute_time: Compute time spent on lost attempts.
    """

    def __init__(
        self,
        inner: WorkerPool,
        dropout: DropoutModel,
        seed: Seed,
        *,
        max_losses_per_job: int = 1000,
    ) -> None:
        if max_losses_per_job < 1:
            raise ConfigError(
                f"max_losses_per_job must be >= 1, got {max_losses_per_job}"
            )
        if isinstance(inner, OpenSystemPool):
            raise ConfigError(
                "UnreliablePool cannot wrap an OpenSystemPool; pass dropout= to "
                "OpenSystemPool instead"
            )
        self.inner = inner
        self.num_workers = inner.num_workers
        self.dropout = dropout
        check_phases(dropout, self.num_workers)
        self.max_losses_per_job = max_losses_per_job
        self._rng = WorkerStreams(seed, Stream.AVAILABILITY, self.num_workers)
        self._attempts = [0] * self.num_workers
        self._jobs: dict[int, _Tracked] = {}
        self._outer_of: dict[int, int] = {}
        self._next_job = 0
        self.lost_jobs = 0
        self.lost_by_worker = [0] * self.num_workers
        self.lost_compute_time = 0.0

    def now(self) -> float:
        return self.inner.now()

    def in_flight(self) -> int:
        """Number of submitted jobs not yet arrived or cancelled."""
        return len(self._jobs)

    def submit(self, worker: int, x: Vector, version: int) -> int:
        inner = self.inner.submit(worker, x, version)
        job = self._next_job
        self._next_job += 1
        self._jobs[job] = _Tracked(worker, x, version, inner)
        self._outer_of[inner] = job
        return job

    def cancel(self, job: int) -> None:
        t = self._jobs.pop(job, None)
        if t is None:
            return
        del self._outer_of[t.inner]
        self.inner.cancel(t.inner)

    def next_arrival(self) -> Arrival:
        while True:
            a = self.inner.next_arrival()
            job = self._outer_of.pop(a.job)
            t = self._jobs[job]
            w = t.worker
            attempt = self._attempts[w]
            self._attempts[w] += 1
            start = a.time - a.compute_time
            if not self.dropout.lost(w, attempt, start, a.time, self._rng(w)):
                del self._jobs[job]
                return Arrival(
                    job, w, t.version, a.payload, a.time, a.compute_time + t.lost_time
                )
            self.lost_jobs += 1
            self.lost_by_worker[w] += 1
            self.lost_compute_time += a.compute_time
            t.losses += 1
            t.lost_time += a.compute_time
            if t.losses >= self.max_losses_per_job:
                raise WorkerFailed(
                    f"job {job} on worker {w} was lost {t.losses} times in a row; "
                    "its compute time may exceed the worker's online window"
                )
            t.inner = self.inner.submit(w, t.x, t.version)
            self._outer_of[t.inner] = job

    def close(self) -> None:
        self.inner.close()
        self._jobs.clear()
        self._outer_of.clear()


# ------------------------------------------------------------------- open system


@dataclass(slots=True)
class _OpenJob:
    worker: int
    x: Vector | None
    version: int
    start: float
    attempt: int
    compute_time: float = field(default=0.0)


class OpenSystemPool:
    """Jobs start at Poisson(λ) times on uniformly drawn clients (see module doc).

    Each start draws the gap to the next start (Exp(1/λ)) and a client uniformly from
    ``timing.num_workers``, both from the pool's ``AVAILABILITY`` stream; the job runs
    at the newest model the pool has been given and takes a compute time from the
    client's ``TIMING`` stream. A client drawn while it is still training runs both
    jobs independently (an M/G/∞ system, as in FLSim, whose populations are large
    enough for this to be rare). Results are computed at arrival from the client's
    ``ORACLE`` stream, like :class:`~clipasync.sim.SimulatedPool`.

    The policy's dispatches are *not* jobs here: ``submit`` records the newest model
    and returns a token id; an arrival on client i reuses the oldest token submitted
    for i (else a fresh id), which keeps the engine's per-worker bookkeeping exact.
    ``cancel`` can only withdraw tokens: a policy cannot cancel open-system jobs.

    With a ``dropout`` model, a job whose client vanished during it is lost: counted,
    never returned, and not retried (in an open system the next job simply comes from
    the Poisson stream); its result is not computed, so no oracle draw is spent.
    (:class:`UnreliablePool` cannot wrap this pool: it retries by submitting, which
    here starts nothing.)

    Args:
        timing: Per-client compute-time model; its ``num_workers`` is the population.
        rate: λ > 0, job starts per time unit.
        task: Computes a job's payload; ``None`` for timing-only runs.
        seed: Root seed.
        dropout: Optional loss model; ``attempt`` is the index of the job among
            those started on that client.

    Attributes:
        started_jobs: Number of jobs started so far.
        lost_jobs: Number of jobs lost to ``dropout``.
        lost_by_worker: Lost jobs per client.
        lost_compute_time: Compute time spent on lost jobs.
    """

    def __init__(
        self,
        timing: ComputeTimeModel,
        rate: float,
        task: Task | None,
        seed: Seed,
        dropout: DropoutModel | None = None,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"rate (lambda) must be positive and finite, got {rate}")
        check_phases(dropout, timing.num_workers)
        self.dropout = dropout
        self.num_workers = timing.num_workers
        self.rate = float(rate)
        self._task = task
        self._sampler = TimeSampler(timing, seed)
        self._rng = stream(seed, Stream.AVAILABILITY)
        self._oracle_rng = WorkerStreams(seed, Stream.ORACLE, self.num_workers)
        self._heap: list[tuple[float, int, _OpenJob]] = []
        self._seq = 0
        self._next_start = self._gap()
        self._model: tuple[Vector | None, int] | None = None
        self._tokens: list[deque[int]] = [deque() for _ in range(self.num_workers)]
        self._token_worker: dict[int, int] = {}
        self._next_id = 0
        self._now = 0.0
        self._area = 0.0  # ∫ (jobs in flight) dt, for the mean concurrency
        self._starts = [0] * self.num_workers
        self._loss_rng = WorkerStreams(seed, Stream.AVAILABILITY, self.num_workers)
        self.started_jobs = 0
        self.lost_jobs = 0
        self.lost_by_worker = [0] * self.num_workers
        self.lost_compute_time = 0.0

    def _gap(self) -> float:
        return float(self._rng.exponential(1.0 / self.rate))

    def now(self) -> float:
        return self._now

    def in_flight(self) -> int:
        """Number of jobs running now."""
        return len(self._heap)

    def mean_concurrency(self) -> float:
        """Time-average number of jobs in flight over [0, now] (0 before any event)."""
        return self._area / self._now if self._now > 0 else 0.0

    def submit(self, worker: int, x: Vector | None, version: int) -> int:
        if not 0 <= worker < self.num_workers:
            raise ConfigError(
                f"worker must be in [0, {self.num_workers}), got {worker}"
            )
        if self._model is None or version >= self._model[1]:
            self._model = (x, version)
        token = self._next_id
        self._next_id += 1
        self._tokens[worker].append(token)
        self._token_worker[token] = worker
        return token

    def cancel(self, job: int) -> None:
        w = self._token_worker.pop(job, None)
        if w is not None:
            self._tokens[w].remove(job)

    def _advance(self, t: float) -> None:
        self._area += len(self._heap) * (t - self._now)
        self._now = t

    def next_arrival(self) -> Arrival:
        if self._model is None:
            raise SimulationExhausted("open system: no model submitted yet")
        while True:
            finish, job = self._next_finish(self._model)
            w = job.worker
            if self.dropout is None or not self.dropout.lost(
                w, job.attempt, job.start, finish, self._loss_rng(w)
            ):
                break
            self.lost_jobs += 1
            self.lost_by_worker[w] += 1
            self.lost_compute_time += job.compute_time
        if self._tokens[w]:
            job_id = self._tokens[w].popleft()
            del self._token_worker[job_id]
        else:
            job_id = self._next_id
            self._next_id += 1
        payload = None
        if self._task is not None and job.x is not None:
            payload = self._task(w, job.x, self._oracle_rng(w))
        return Arrival(job_id, w, job.version, payload, finish, job.compute_time)

    def _next_finish(self, model: tuple[Vector | None, int]) -> tuple[float, _OpenJob]:
        # Start every job due before the next finish, then pop that finish.
        heap = self._heap
        while not heap or self._next_start < heap[0][0]:
            self._advance(self._next_start)
            w = int(self._rng.integers(self.num_workers))
            x, version = model
            job = _OpenJob(w, x, version, self._now, self._starts[w])
            self._starts[w] += 1
            job.compute_time = self._sampler.next(w, self._now)
            heapq.heappush(heap, (self._now + job.compute_time, self._seq, job))
            self._seq += 1
            self.started_jobs += 1
            self._next_start = self._now + self._gap()
        self._advance(heap[0][0])
        finish, _, job = heapq.heappop(heap)
        return finish, job

    def close(self) -> None:
        self._heap.clear()
