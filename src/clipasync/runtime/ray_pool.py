"""A ``WorkerPool`` of Ray actors: real processes, locally or across a cluster.

The policy stays in the driver (the server of Erickson & Johansson 2026, arXiv
2606.13287, Algorithms 1–2); each worker lives in a Ray actor
(:mod:`clipasync.runtime.ray_actor`) that builds its task from a small picklable
factory and keeps the worker's own oracle and timing streams. Time is in *time
units* of ``time_unit_s`` seconds throughout (clock, arrivals, compute times), as
on the command line.

Hot-path choices, each measured on a 2-core machine:

* a model of up to :func:`~clipasync.runtime.ray_session.inline_bytes` (1 MiB
  for a local Ray) travels inside each task message, and the gradient comes back
  the same way (no object-store round trips: about 4 ms less per job at 10^5
  float32 parameters); a larger one is put once per model version, shared by
  every job dispatched at it, and crosses process boundaries without a copy;
* results come back through ``ray.wait(list(inflight), num_returns=1)`` and a
  ref → job map; list order is never trusted, and every result carries its job id;
* at model scale, ``in_place=True`` (:mod:`clipasync.runtime.inplace`) or
  ``shards=K`` (:mod:`clipasync.runtime.shards`): workers send ‖g‖² and the update
  makes no model-sized temporary, with the pure path's iterates.

Start-up: every actor is created at once and all are awaited under one bound
(``ready_timeout_s``; :attr:`RayPool.startup_s` records the time); by default the
workers are packed into at most as many actor processes as the cluster has CPUs.

Faults: an actor that dies — while it starts or mid-job — is counted in
:attr:`RayPool.failures` and replaced by a fresh actor that continues its workers'
streams from their last finished jobs; every job it still held is resubmitted, in
order, at its own model and version, so the policy never notices. After
``max_consecutive_failures`` deaths with no success in between, or when the task
raises while it is built, :class:`~clipasync.errors.WorkerFailed` is raised.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipasync.errors import ConfigError, SimulationExhausted, WorkerFailed
from clipasync.runtime._oracle import (
    StreamState,
    TaskFactory,
    check_worker,
    pool_size,
)
from clipasync.runtime.inplace import Gradient, ServerBuffer
from clipasync.runtime.ray_actor import CONTROL, group, remote_class
from clipasync.runtime.ray_session import import_ray, inline_bytes, start_ray
from clipasync.runtime.shards import ShardedGradient, ShardedModel
from clipasync.timing import ComputeTimeModel
from clipasync.types import Arrival, Seed, Vector

__all__ = ["RayPool", "import_ray", "start_ray"]

#: Bytes a pickled array takes beyond its data (dtype, shape, framing), rounded up.
_PICKLE_SLACK = 4096


@dataclass(slots=True)
class _Job:
    job: int
    worker: int
    version: int
    x_ref: Any
    generation: int
    ref: Any = None
    parts: tuple[Any, ...] = ()  # with shards: the refs of the payload's slices


class RayPool:
    """A ``WorkerPool`` of Ray actors, one per worker by default (see module
    docstring).

    Args:
        task_factory: Picklable zero-argument callable returning the task
            ``task(worker, x, rng) -> payload``; called inside each actor (e.g.
            :class:`~clipasync.runtime.ProblemTask`).
        num_workers: Number of workers (defaults to ``timing.num_workers``).
        timing: Injected compute-time model, in *time units* (one unit lasts
            ``time_unit_s`` seconds), or ``None`` to run with real compute time
            only.
        time_unit_s: Seconds per time unit: the unit of ``timing``, of
            :meth:`now` and of every arrival's ``time`` and ``compute_time``, as on
            the command line's ``--time-unit`` (so the simulator's and this pool's
            records read alike).
        seed: Root seed (per-worker ``ORACLE`` and ``TIMING`` streams, as in the
            simulator).
        address: Cluster to join if Ray is not initialised yet (see
            :func:`start_ray`); ``None`` starts a private local Ray.
        num_cpus_per_worker: CPUs each actor reserves per worker it holds (0 by
            default: actors that each reserve a CPU beyond the cluster's count
            would wait forever).
        max_consecutive_failures: Deaths of one actor, with no success between
            them, after which :class:`WorkerFailed` is raised.
        streams: Per-worker stream states to continue from (resume).
        actor_options: Extra ``.options(...)`` for the actors (resources,
            ``scheduling_strategy``; default ``"SPREAD"`` over the nodes).
        ready_timeout_s: Bound on the start-up: every actor must be ready (each
            one replaced if it dies while starting) within this many seconds.
        workers_per_actor: Workers held by one actor process (each in its own
            thread, its jobs in submission order). Default: as few per actor as
            keep the actor processes at most the cluster's CPUs (1 when there are
            CPUs enough) — starting a Ray worker process costs about a CPU-second,
            and processes beyond the CPUs add start-up time, not throughput.
        in_place: Model-scale server: each worker also sends ``‖g‖²`` (so the
            policy's norm costs the driver no pass), payloads arrive as
            :class:`~clipasync.runtime.inplace.Gradient` and a model from
            :meth:`model` is updated in place (:mod:`clipasync.runtime.inplace`;
            iterates bit-identical to the pure path).
        shards: Sharded server (implies ``in_place``): :meth:`model` puts the
            model on this many shard actors, workers return their gradient as as
            many slices, and each shard applies the updates to its slice
            (:mod:`clipasync.runtime.shards`); 0 keeps the model in the driver.

    Raises:
        ConfigError: On bad sizes or a CPU reservation the cluster cannot hold.
        WorkerFailed: If the actors are not ready within ``ready_timeout_s``.
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
        workers_per_actor: int | None = None,
        in_place: bool = False,
        shards: int = 0,
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
        if workers_per_actor is not None and not (
            isinstance(workers_per_actor, int) and workers_per_actor >= 1
        ):
            raise ConfigError(
                f"workers_per_actor must be an integer >= 1, got {workers_per_actor}"
            )
        if not (ready_timeout_s > 0):
            raise ConfigError(f"ready_timeout_s must be > 0, got {ready_timeout_s}")
        start_ray(address)
        ray = self._ray = import_ray()
        self._inline = inline_bytes()  # models up to this size travel inline
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        if workers_per_actor is None:  # no more actor processes than CPUs
            workers_per_actor = max(1, math.ceil(n / max(cpus, 1.0)))
        #: Workers held by one actor process.
        self.workers_per_actor = workers_per_actor
        if not (isinstance(shards, int) and shards >= 0):
            raise ConfigError(f"shards must be an integer >= 0, got {shards}")
        self._in_place = bool(in_place) or shards > 0
        self._shards = shards
        self._models: list[ShardedModel] = []
        held = min(workers_per_actor, n)
        if num_cpus_per_worker > 0 and num_cpus_per_worker * held > cpus:
            raise ConfigError(
                f"num_cpus_per_worker={num_cpus_per_worker} (x {held} workers per "
                f"actor) exceeds the cluster's {cpus:g} CPUs: the actor could never "
                "be scheduled (use 0 or a fraction)"
            )
        self.num_workers = n
        self.time_unit_s = float(time_unit_s)
        #: Actor deaths detected (each replaced by a fresh actor), start-up included.
        self.failures = 0
        self._factory = task_factory
        self._timing = timing
        self._seed = seed
        self._max_failures = max_consecutive_failures
        self._num_cpus = num_cpus_per_worker
        self._options: dict[str, Any] = {
            "scheduling_strategy": "SPREAD",
            **dict(actor_options or {}),
        }
        self._streams: list[StreamState | None] = (
            [None] * n if streams is None else list(streams)
        )
        #: Workers of each actor (``hosts[h]``) and the actor of each worker.
        k = workers_per_actor
        self._hosts = [tuple(range(i, min(i + k, n))) for i in range(0, n, k)]
        self._host_of = [w // k for w in range(n)]
        self._consecutive = [0] * len(self._hosts)
        self._generation = [0] * len(self._hosts)
        self._epoch = 0  # runs of this pool's actors (see reset)
        self._jobs: dict[int, _Job] = {}  # live: not arrived, not cancelled
        self._inflight: dict[Any, int] = {}  # result ref -> job (incl. cancelled)
        self._cancelled: dict[int, int] = {}  # cancelled job -> worker, until drained
        self._streams_job = [-1] * n  # job whose result set self._streams[w]
        self._next_job = 0
        self._put_key: tuple[int, int] | None = None
        self._put_x: Vector | None = None
        self._put_ref: Any = None
        self._origin = time.time()
        self._ready_timeout = ready_timeout_s
        t0 = time.perf_counter()
        self._actors = [self._new_actor(h) for h in range(len(self._hosts))]
        self._await_ready({a.ready.remote(): h for h, a in enumerate(self._actors)})
        #: Wall-clock seconds from creating the actors to all of them being ready.
        self.startup_s = time.perf_counter() - t0
        self._t0 = time.perf_counter()

    def reset(
        self,
        task_factory: TaskFactory,
        *,
        timing: ComputeTimeModel | None = None,
        seed: Seed = 0,
        streams: list[StreamState | None] | None = None,
    ) -> None:
        """Reuse this pool's actors for a new run: as a fresh pool with these
        arguments (same workers, time unit and options), without starting processes.

        Jobs still in flight are cancelled and drained first; :attr:`startup_s`
        becomes the time the actors took to rebuild their tasks.
        """
        n = pool_size(self.num_workers, timing, self.time_unit_s, streams)
        self._drain()
        for m in self._models:
            with contextlib.suppress(Exception):
                m.close()
        self._models = []
        self._factory, self._timing, self._seed = task_factory, timing, seed
        self._streams = [None] * n if streams is None else list(streams)
        self._streams_job = [-1] * n
        self._consecutive = [0] * len(self._hosts)
        self._jobs.clear()
        self._inflight.clear()
        self._cancelled.clear()
        self._next_job = 0
        self._epoch += 1  # this run's cancellations only (the actor's reset)
        self._put_key = self._put_x = self._put_ref = None
        self._origin = time.time()
        t0 = time.perf_counter()
        self._await_ready(
            {
                a.reset.remote(*self._actor_args(h)): h
                for h, a in enumerate(self._actors)
            }
        )
        self.startup_s = time.perf_counter() - t0
        self._t0 = time.perf_counter()

    # ---------------------------------------------------------------- WorkerPool

    def now(self) -> float:
        """Time since the pool was ready, in time units."""
        return (time.perf_counter() - self._t0) / self.time_unit_s

    def submit(self, worker: int, x: Vector | None, version: int) -> int:
        check_worker(worker, self.num_workers)
        job = _Job(
            self._next_job,
            worker,
            version,
            self._model_ref(x, version),
            self._generation[self._host_of[worker]],
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
        actor = self._actors[self._host_of[j.worker]]
        actor.cancel.options(concurrency_group=CONTROL).remote(
            job, j.worker, self._epoch
        )

    def next_arrival(self) -> Arrival:
        ray = self._ray
        from ray.exceptions import RayActorError

        while self._jobs:
            ready, _ = ray.wait(list(self._inflight), num_returns=1)
            ref = ready[0]
            job = self._inflight.pop(ref)
            try:
                payload, got, seconds, streams, status, sq = ray.get(ref)
            except RayActorError as exc:
                j = self._jobs.get(job)
                if j is not None:
                    self._check_init(exc, self._host_of[j.worker])
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
            if status == "cancelled":  # never asked for: no gradient to return
                raise RuntimeError(
                    f"job {job} of worker {j.worker} came back cancelled, "
                    "but this run did not cancel it"
                )
            self._keep_streams(j.worker, job, streams)
            del self._jobs[job]
            if status == "exhausted":
                continue
            self._consecutive[self._host_of[j.worker]] = 0
            if self._shards:  # payload: the gradient's length (None: no gradient)
                if payload is not None:
                    payload = ShardedGradient(self._ray, j.parts, sq, int(payload))
            elif sq is not None:
                payload = Gradient(payload, sq)
            unit = self.time_unit_s
            return Arrival(
                job, j.worker, j.version, payload, self.now(), seconds / unit
            )
        raise SimulationExhausted("no job in flight")

    def close(self) -> None:
        for a in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(a)
        for m in self._models:
            with contextlib.suppress(Exception):
                m.close()
        self._jobs.clear()
        self._inflight.clear()
        self._put_ref = self._put_x = None

    # ---------------------------------------------------------------- extras

    @property
    def actors(self) -> list[Any]:
        """The current actor handle of each worker (e.g. to kill one in a test;
        workers of one actor share its handle)."""
        return [self._actors[h] for h in self._host_of]

    def model(self, x0: Vector) -> Any:
        """The initial model to run from: with ``in_place``, a driver-owned float32
        :class:`~clipasync.runtime.inplace.ServerBuffer` that the policy's
        ``x − u`` updates in place; else ``x0`` itself."""
        if self._shards:
            model = ShardedModel(
                self._ray, x0, self._shards, {"num_cpus": 0, **self._options}
            )
            self._models.append(model)
            return model
        return ServerBuffer(x0) if self._in_place else x0

    def stream_states(self) -> list[StreamState | None]:
        """Each worker's stream state after its last finished job (``None``: not
        started), for checkpoints."""
        return list(self._streams)

    # ---------------------------------------------------------------- internals

    def _actor_args(self, host: int) -> tuple[Any, ...]:
        workers = self._hosts[host]
        return (
            self._factory,
            workers,
            self._seed,
            self._timing,
            self.time_unit_s,
            tuple(self._streams[w] for w in workers),
            self._origin,
            self._in_place,
            self._shards,
            self._epoch,
        )

    def _new_actor(self, host: int) -> Any:
        workers = self._hosts[host]
        cls = remote_class(self._ray, len(workers)).options(
            num_cpus=self._num_cpus * len(workers), **self._options
        )
        return cls.remote(*self._actor_args(host))

    def _drain(self) -> None:
        # Before a reset: cancel what is still running (ends injected sleeps) and
        # wait for it; an actor still busy after the bound is replaced.
        for job in list(self._jobs):
            self.cancel(job)
        refs = list(self._inflight)
        if refs:
            _, late = self._ray.wait(
                refs, num_returns=len(refs), timeout=self._ready_timeout
            )
            late_hosts = set()
            for ref in late:
                w = self._cancelled.get(self._inflight[ref])
                if w is not None:
                    late_hosts.add(self._host_of[w])
            for h in late_hosts:
                with contextlib.suppress(Exception):
                    self._ray.kill(self._actors[h])
                self._generation[h] += 1
                self._actors[h] = self._new_actor(h)

    def _await_ready(self, pending: dict[Any, int]) -> None:
        # Every actor starts at once (creation is asynchronous); they are awaited
        # together, with one deadline, and one that dies while starting is replaced.
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        ray = self._ray
        timeout_s = self._ready_timeout
        deadline = time.perf_counter() + timeout_s
        while pending:
            left = deadline - time.perf_counter()
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(left, 0))
            if not ready:
                self.close()
                raise WorkerFailed(
                    f"{len(pending)} of {len(self._actors)} Ray actors were not ready "
                    f"after {timeout_s:g} s (the cluster may lack the resources they "
                    "ask for, or be overloaded): raise ready_timeout_s or use fewer"
                )
            h = pending.pop(ready[0])
            try:
                ray.get(ready[0])
            except (RayActorError, GetTimeoutError) as exc:
                self._check_init(exc, h)
                self._replace(h)
                pending[self._actors[h].ready.remote()] = h
            except RayTaskError as exc:  # a reset whose task raised
                self._check_init(exc, h, force=True)

    def _check_init(self, exc: BaseException, host: int, force: bool = False) -> None:
        # An exception raised while building the task (a bug, a missing module) is
        # not a death: a fresh actor would raise it again. Report it, once.
        if not (force or getattr(exc, "actor_init_failed", False)):
            return
        lines = [
            re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(exc).splitlines()
        ]
        cause = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception):", ln)]
        self.close()
        raise WorkerFailed(
            f"building the task of workers {list(self._hosts[host])} failed in the "
            f"actor: {cause[-1] if cause else lines[0]}"
        )

    def _replace(self, host: int) -> None:
        self.failures += 1
        self._consecutive[host] += 1
        if self._consecutive[host] > self._max_failures:
            self.close()
            raise WorkerFailed(
                f"the actor of workers {list(self._hosts[host])} died "
                f"{self._consecutive[host]} times in a row; giving up"
            )
        with contextlib.suppress(Exception):
            self._ray.kill(self._actors[host])
        self._generation[host] += 1
        self._actors[host] = self._new_actor(host)

    def _model_ref(self, x: Vector | None, version: int) -> Any:
        # One object per model version, shared by all the jobs dispatched at it. The
        # identity check guards against a policy that changes x without a new version.
        if isinstance(x, ShardedModel):
            return tuple(x.refs)  # the shards' slices of this version
        key = (version, id(x))
        if self._put_key != key or self._put_x is not x:
            # A plain array: workers get an ordinary array, never the server buffer.
            arr = None if x is None else np.asarray(x)
            if arr is not None and arr.nbytes + _PICKLE_SLACK <= self._inline:
                # Small enough to travel inside each task message (no trip through
                # the object store); a copy, since the in-place buffer changes and a
                # resubmitted job must see its own version.
                self._put_ref = np.array(arr, copy=True)
            else:
                self._put_ref = self._ray.put(arr)
            self._put_key, self._put_x = key, x
        return self._put_ref

    def _dispatch(self, job: _Job) -> None:
        h = self._host_of[job.worker]
        local = job.worker - self._hosts[h][0]
        parts = job.x_ref if isinstance(job.x_ref, tuple) else (job.x_ref,)
        if self._shards:
            run = self._actors[h].run.options(
                concurrency_group=group(local), num_returns=self._shards + 1
            )
            job.ref, *rest = run.remote(job.job, job.worker, *parts)
            job.parts = tuple(rest)
        else:
            run = self._actors[h].run.options(concurrency_group=group(local))
            job.ref = run.remote(job.job, job.worker, *parts)
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
        h = self._host_of[j.worker]
        if j.generation < self._generation[h]:
            return  # already resubmitted when this death was first seen
        self._replace(h)
        # Resubmit everything the dead actor held, in submission order (FIFO).
        lost = sorted(
            (k for k in self._jobs.values() if self._host_of[k.worker] == h),
            key=lambda k: k.job,
        )
        for k in lost:
            self._inflight.pop(k.ref, None)
            k.generation = self._generation[h]
            self._dispatch(k)
