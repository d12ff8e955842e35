"""The Ray actor behind one or more workers of a :class:`~clipasync.runtime.RayPool`.

Each worker of an actor keeps its own oracle and timing streams
(:class:`~clipasync.runtime._oracle.OracleWorker`) and runs its jobs in its own
one-thread concurrency group, in submission order, so workers of one actor overlap
like separate actors; a last one-thread group serves ``cancel``, which ends a job's
injected sleep early (a cancelled job never calls the oracle, as in the simulator).
``compute_time`` is measured inside the actor, so it excludes queueing. With the
in-place or sharded server (Erickson & Johansson 2026, arXiv 2606.13287, Algorithm
1 at model scale) the actor also returns ‖g‖², and with shards, the gradient's
slices as separate objects.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from clipasync.runtime._oracle import OracleWorker, StreamState, TaskFactory
from clipasync.runtime.shards import split
from clipasync.timing import ComputeTimeModel
from clipasync.types import Seed, Vector

CONTROL = "control"  # concurrency group of ``cancel``: runs while ``run`` sleeps


class _Slot:
    """One worker inside an actor: its oracle and its running / cancelled jobs."""

    def __init__(self, oracle: OracleWorker) -> None:
        self.oracle = oracle
        self.running: tuple[int, threading.Event] | None = None
        self.last_started = -1
        self.cancelled: set[int] = set()  # cancelled before they started


class _RayOracle:
    """The actor behind one or more workers (wrapped with ``ray.remote`` at first
    use); each worker's jobs run in its own one-thread concurrency group, in
    submission order, so workers of one actor overlap like separate actors."""

    def __init__(
        self,
        factory: TaskFactory,
        workers: tuple[int, ...],
        seed: Seed,
        timing: ComputeTimeModel | None,
        time_unit_s: float,
        streams: tuple[StreamState | None, ...],
        origin: float,
        norms: bool = False,
        shards: int = 0,
        epoch: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self.reset(
            factory,
            workers,
            seed,
            timing,
            time_unit_s,
            streams,
            origin,
            norms,
            shards,
            epoch,
        )

    def reset(
        self,
        factory: TaskFactory,
        workers: tuple[int, ...],
        seed: Seed,
        timing: ComputeTimeModel | None,
        time_unit_s: float,
        streams: tuple[StreamState | None, ...],
        origin: float,
        norms: bool = False,
        shards: int = 0,
        epoch: int = 0,
    ) -> int:
        """(Re)build the workers for a run (a reused actor: no new process).

        ``epoch`` numbers the pool's runs: job ids restart at 0 with each run, so a
        cancellation sent in an earlier run, which may run after this reset (it
        travels in its own concurrency group), must not cancel this run's job of
        the same id."""
        self._norms = norms or shards > 0  # send ‖g‖² with each float payload
        self._shards = shards  # > 0: return the payload as this many slices
        self._slots = {
            w: _Slot(OracleWorker(factory(), w, seed, timing, st))
            for w, st in zip(workers, streams, strict=True)
        }
        self._unit = time_unit_s
        self._origin = origin  # wall-clock (epoch) start of the pool
        with self._lock:
            self._epoch = epoch
        return os.getpid()

    def ready(self) -> int:
        return os.getpid()

    def cancel(self, job: int, worker: int, epoch: int = 0) -> None:
        with self._lock:
            if epoch != self._epoch:  # a job of an earlier run: long gone
                return
            slot = self._slots[worker]
            if slot.running is not None and slot.running[0] == job:
                slot.running[1].set()
            elif job > slot.last_started:
                slot.cancelled.add(job)

    def run(self, job: int, worker: int, *parts: Vector | None) -> Any:
        """Return ``(payload, job, seconds on this job, streams, status, ‖payload‖²
        or None)``; with shards, that tuple (its payload replaced by the payload's
        length, ``None`` for no payload) and then the payload's slices, one object
        each. ``parts`` are the model's slices."""
        x = parts[0] if len(parts) == 1 else np.concatenate(parts)  # type: ignore[arg-type]
        out = self._run(x, job, worker)
        if not self._shards:
            return out
        g = out[0]
        pieces = split(g, self._shards) if g is not None else [None] * self._shards
        size = None if g is None else int(g.shape[0])  # the payload's stand-in
        return ((size, *out[1:]), *pieces)

    def _run(
        self, x: Vector | None, job: int, worker: int
    ) -> tuple[Any, int, float, Any, str, Any]:
        slot = self._slots[worker]
        event = threading.Event()
        with self._lock:
            slot.last_started = job
            if job in slot.cancelled:
                slot.cancelled.discard(job)
                return None, job, 0.0, None, "cancelled", None
            slot.running = (job, event)
        try:
            now = (time.time() - self._origin) / self._unit
            out = slot.oracle.run_job(x, now, event, self._unit)
        finally:
            with self._lock:
                slot.running = None
        streams = None if out.status == "exhausted" else slot.oracle.streams()
        sq = None
        if self._norms and isinstance(out.payload, np.ndarray):
            sq = np.dot(out.payload, out.payload)  # grad_norm's own expression
        return out.payload, job, out.seconds, streams, out.status, sq


_actor_classes: dict[int, Any] = {}


def remote_class(ray: Any, size: int) -> Any:
    """The actor class for ``size`` workers: one one-thread group per worker."""
    if size not in _actor_classes:
        groups = {CONTROL: 1, **{group(i): 1 for i in range(size)}}
        _actor_classes[size] = ray.remote(concurrency_groups=groups)(_RayOracle)
    return _actor_classes[size]


def group(local: int) -> str:
    return f"w{local}"
