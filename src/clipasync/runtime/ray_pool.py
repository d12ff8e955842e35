"""A ``WorkerPool`` of Ray actors: real processes, locally or across a cluster.

The policy stays in the driver (the server of Erickson & Johansson 2026, arXiv
2606.13287, Algorithms 1–2); each worker is a Ray actor that holds
its task (problem and data shard, built inside the actor from a small picklable
factory) and its own oracle and timing streams, and answers ``run(x, job)`` with
``(payload, job, measured compute time, stream state)``.

Hot-path choices, each measured on a 2-core machine:

* one ``ray.put`` per model version, shared by every job dispatched at it (the last
  ``ObjectRef`` is cached by version); the payload is a numpy array, which crosses
  process boundaries without a copy (torch tensors are copied on every hop);
* results come back through ``ray.wait(list(inflight), num_returns=1)`` and a
  ref → job map; list order is never trusted, and every result carries its job id;
* an actor processes ``run`` calls one at a time in submission order (FIFO per
  worker), and ``compute_time`` is measured inside the actor, so it excludes queueing.
  A second, one-thread concurrency group serves ``cancel``: it ends a job's injected
  sleep early, and a cancelled job never calls the oracle (as in the simulator).

Faults: a result that raises ``RayActorError`` (the actor was killed or its process
crashed) is counted in :attr:`RayPool.failures`; the worker gets a fresh actor that
continues the dead one's streams from its last finished job, and every job the dead
actor still held is resubmitted, in order, at its own model and version, so the
policy never notices. After ``max_consecutive_failures`` deaths of one worker with no
success in between, :class:`~clipasync.errors.WorkerFailed` is raised.

Ray is imported lazily (:func:`~clipasync.runtime.ray_session.import_ray`), with an
install hint when it is missing; :func:`start_ray` (re-exported here) starts or joins
it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clipasync.errors import ConfigError, SimulationExhausted, WorkerFailed
from clipasync.runtime._oracle import (
    OracleWorker,
    StreamState,
    TaskFactory,
    check_worker,
    pool_size,
)
from clipasync.runtime.ray_session import import_ray, start_ray
from clipasync.timing import ComputeTimeModel
from clipasync.types import Arrival, Seed, Vector

__all__ = ["RayPool", "import_ray", "start_ray"]

_CONTROL = "control"  # concurrency group of ``cancel``: runs while ``run`` sleeps


class _RayOracle:
    """The actor behind one worker (wrapped with ``ray.remote`` at first use)."""

    def __init__(
        self,
        factory: TaskFactory,
        worker: int,
        seed: Seed,
        timing: ComputeTimeModel | None,
        time_unit_s: float,
        streams: StreamState | None,
        origin: float,
    ) -> None:
        self._oracle = OracleWorker(factory(), worker, seed, timing, streams)
        self._unit = time_unit_s
        self._origin = origin  # wall-clock (epoch) start of the pool
        self._lock = threading.Lock()
        self._running: tuple[int, threading.Event] | None = None
        self._last_started = -1
        self._cancelled: set[int] = set()  # cancelled before they started

    def ready(self) -> int:
        return os.getpid()

    def cancel(self, job: int) -> None:
        with self._lock:
            if self._running is not None and self._running[0] == job:
                self._running[1].set()
            elif job > self._last_started:
                self._cancelled.add(job)

    def run(self, x: Vector | None, job: int) -> tuple[Any, int, float, Any, str]:
        """Return ``(payload, job, seconds on this job, streams, status)``."""
        event = threading.Event()
        with self._lock:
            self._last_started = job
            if job in self._cancelled:
                self._cancelled.discard(job)
                return None, job, 0.0, None, "cancelled"
            self._running = (job, event)
        try:
            now = (time.time() - self._origin) / self._unit
            out = self._oracle.run_job(x, now, event, self._unit)
        finally:
            with self._lock:
                self._running = None
        streams = None if out.status == "exhausted" else self._oracle.streams()
        return out.payload, job, out.seconds, streams, out.status


@dataclass(slots=True)
class _Job:
    job: int
    worker: int
    version: int
    x_ref: Any
    generation: int
    ref: Any = None


_actor_class: Any = None


def _remote_class(ray: Any) -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = ray.remote(concurrency_groups={_CONTROL: 1})(_RayOracle)
    return _actor_class


class RayPool:
    """A ``WorkerPool`` with one Ray actor per worker (see module docstring).

    Args:
        task_factory: Picklable zero-argument callable returning the task
            ``task(worker, x, rng) -> payload``; called inside each actor (e.g.
            :class:`~clipasync.runtime.ProblemTask`).
        num_workers: Number of workers (defaults to ``timing.num_workers``).
        timing: Injected compute-time model (its units scaled by ``time_unit_s``),
            or ``None`` to run with real compute time only.
        time_unit_s: Seconds per time unit of ``timing``.
        seed: Root seed (per-worker ``ORACLE`` and ``TIMING`` streams, as in the
            simulator).
        address: Cluster to join if Ray is not initialised yet (see
            :func:`start_ray`); ``None`` starts a private local Ray.
        num_cpus_per_worker: CPUs each actor reserves (0 by default: actors that
            each reserve a CPU beyond the cluster's count would wait forever).
        max_consecutive_failures: Deaths of one worker, with no success between
            them, after which :class:`WorkerFailed` is raised.
        streams: Per-worker stream states to continue from (resume).
        actor_options: Extra ``.options(...)`` for the actors (resources,
            ``scheduling_strategy``; default ``"SPREAD"`` over the nodes).
        ready_timeout_s: How long to wait for the actors to start.

    Raises:
        ConfigError: On bad sizes or a CPU reservation the cluster cannot hold.
    """

    def __init__(
        self,
        task_factory: TaskFactory,
        num_workers: int | None = None,
        *,
        timing: ComputeTimeModel | None = None,
        time_unit_s: float = 1.0,
        seed: Seed = 0,
        address: str | None = None,
        num_cpus_per_worker: float = 0.0,
        max_consecutive_failures: int = 3,
        streams: list[StreamState | None] | None = None,
        actor_options: Mapping[str, Any] | None = None,
        ready_timeout_s: float = 300.0,
    ) -> None:
        n = pool_size(num_workers, timing, time_unit_s, streams)
        if not (num_cpus_per_worker >= 0):
            raise ConfigError(
                f"num_cpus_per_worker must be >= 0, got {num_cpus_per_worker}"
            )
        if max_consecutive_failures < 1:
            raise ConfigError(
                f"max_consecutive_failures must be >= 1, got {max_consecutive_failures}"
            )
        start_ray(address)
        ray = self._ray = import_ray()
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        if num_cpus_per_worker > 0 and num_cpus_per_worker > cpus:
            raise ConfigError(
                f"num_cpus_per_worker={num_cpus_per_worker} exceeds the cluster's "
                f"{cpus:g} CPUs: the actor could never be scheduled (use 0 or a "
                "fraction)"
            )
        self.num_workers = n
        self.time_unit_s = float(time_unit_s)
        #: Actor deaths detected (each replaced by a fresh actor).
        self.failures = 0
        self._factory = task_factory
        self._timing = timing
        self._seed = seed
        self._max_failures = max_consecutive_failures
        self._options: dict[str, Any] = {
            "num_cpus": num_cpus_per_worker,
            "scheduling_strategy": "SPREAD",
            **dict(actor_options or {}),
        }
        self._streams: list[StreamState | None] = (
            [None] * n if streams is None else list(streams)
        )
        self._consecutive = [0] * n
        self._generation = [0] * n
        self._jobs: dict[int, _Job] = {}  # live: not arrived, not cancelled
        self._inflight: dict[Any, int] = {}  # result ref -> job (incl. cancelled)
        self._cancelled: dict[int, int] = {}  # cancelled job -> worker, until drained
        self._streams_job = [-1] * n  # job whose result set self._streams[w]
        self._next_job = 0
        self._put_key: tuple[int, int] | None = None
        self._put_x: Vector | None = None
        self._put_ref: Any = None
        self._origin = time.time()
        self._actors = [self._new_actor(w) for w in range(n)]
        ray.get([a.ready.remote() for a in self._actors], timeout=ready_timeout_s)
        self._t0 = time.perf_counter()

    # ---------------------------------------------------------------- WorkerPool

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def submit(self, worker: int, x: Vector | None, version: int) -> int:
        check_worker(worker, self.num_workers)
        job = _Job(
            self._next_job,
            worker,
            version,
            self._model_ref(x, version),
            self._generation[worker],
        )
        self._next_job += 1
        self._jobs[job.job] = job
        self._dispatch(job)
        return job.job

    def cancel(self, job: int) -> None:
        j = self._jobs.pop(job, None)
        if j is None:
            return
        self._cancelled[job] = j.worker
        self._actors[j.worker].cancel.options(concurrency_group=_CONTROL).remote(job)

    def next_arrival(self) -> Arrival:
        ray = self._ray
        from ray.exceptions import RayActorError

        while self._jobs:
            ready, _ = ray.wait(list(self._inflight), num_returns=1)
            ref = ready[0]
            job = self._inflight.pop(ref)
            try:
                payload, got, seconds, streams, status = ray.get(ref)
            except RayActorError:
                self._on_actor_death(job)
                continue
            if got != job:
                raise RuntimeError(f"result of job {got} arrived for job {job}")
            j = self._jobs.get(job)
            if job in self._cancelled:
                self._keep_streams(self._cancelled.pop(job), job, streams)
                continue
            if j is None:  # duplicate or unknown: never applied twice
                continue
            self._keep_streams(j.worker, job, streams)
            del self._jobs[job]
            if status == "exhausted":
                continue
            self._consecutive[j.worker] = 0
            return Arrival(job, j.worker, j.version, payload, self.now(), seconds)
        raise SimulationExhausted("no job in flight")

    def close(self) -> None:
        for a in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(a)
        self._jobs.clear()
        self._inflight.clear()
        self._put_ref = self._put_x = None

    # ---------------------------------------------------------------- extras

    @property
    def actors(self) -> list[Any]:
        """The current actor handle of each worker (e.g. to kill one in a test)."""
        return list(self._actors)

    def stream_states(self) -> list[StreamState | None]:
        """Each worker's stream state after its last finished job (``None``: not
        started), for checkpoints."""
        return list(self._streams)

    # ---------------------------------------------------------------- internals

    def _new_actor(self, worker: int) -> Any:
        cls = _remote_class(self._ray).options(**self._options)
        return cls.remote(
            self._factory,
            worker,
            self._seed,
            self._timing,
            self.time_unit_s,
            self._streams[worker],
            self._origin,
        )

    def _model_ref(self, x: Vector | None, version: int) -> Any:
        # One object per model version, shared by all the jobs dispatched at it. The
        # identity check guards against a policy that changes x without a new version.
        key = (version, id(x))
        if self._put_key != key or self._put_x is not x:
            self._put_ref = self._ray.put(x)
            self._put_key, self._put_x = key, x
        return self._put_ref

    def _dispatch(self, job: _Job) -> None:
        actor = self._actors[job.worker]
        job.ref = actor.run.remote(job.x_ref, job.job)
        self._inflight[job.ref] = job.job

    def _keep_streams(self, worker: int, job: int, streams: StreamState | None) -> None:
        # Results of one worker may be read out of order; keep the latest job's.
        if streams is not None and job > self._streams_job[worker]:
            self._streams[worker] = streams
            self._streams_job[worker] = job

    def _on_actor_death(self, job: int) -> None:
        j = self._jobs.get(job)
        if j is None:  # a cancelled job of a dead actor: nothing to redo
            self._cancelled.pop(job, None)
            return
        w = j.worker
        if j.generation < self._generation[w]:
            return  # already resubmitted when this death was first seen
        self.failures += 1
        self._consecutive[w] += 1
        if self._consecutive[w] > self._max_failures:
            raise WorkerFailed(
                f"worker {w} died {self._consecutive[w]} times in a row; giving up"
            )
        with contextlib.suppress(Exception):
            self._ray.kill(self._actors[w])
        self._generation[w] += 1
        self._actors[w] = self._new_actor(w)
        # Resubmit everything the dead actor held, in submission order (FIFO).
        lost = sorted(
            (k for k in self._jobs.values() if k.worker == w), key=lambda k: k.job
        )
        for k in lost:
            self._inflight.pop(k.ref, None)
            k.generation = self._generation[w]
            self._dispatch(k)
