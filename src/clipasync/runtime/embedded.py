"""A server rule inside your own asynchronous system: :class:`EmbeddedServer`.

For workers that already exist (your own RPC, ``torch.distributed``, a job queue)
the engine's pools are in the way; what is left of a method is its server rule.
:class:`EmbeddedServer` holds one registered
:class:`~clipasync.policies.base.ServerPolicy` behind a lock:

* ``pull(worker) -> (version, x)``: the current model and its version k (a
  copy: the caller may keep it while the server moves on);
* ``push(grad, version, worker) -> Reply``: one finished job, computed at
  ``version``; the policy applies, discards or buffers it exactly as in
  :func:`clipasync.engine.run` (for clipped ASGD, arXiv 2606.13287 Alg. 1:
  x ← x − γ·clip_c(g), with delay = k − version), and the row the engine would
  write goes to the same :class:`~clipasync.recorder.Recorder`.

Job ids are given out by ``pull`` in call order and matched FIFO per worker by
``push``, as the engine's pools number submitted jobs; arrival times are seconds
since the server was built unless ``push`` is given one. So a system whose
workers pull and push in the order the engine would dispatch and receive gets the
engine's trajectory bit for bit (tests/runtime/test_embedded.py).

The server does not schedule: the ``Reply`` says which workers the policy would
give a new job (``reply.dispatch``) or cancel (``reply.cancel``); honouring that
is the caller's side (for ``async_sgd`` the same worker simply pulls again).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.policies.base import ServerPolicy
from clipasync.recorder import Recorder
from clipasync.runtime._oracle import check_worker
from clipasync.seeding import Stream, stream
from clipasync.types import Arrival, Reply, Seed, Vector


class EmbeddedServer:
    """A thread-safe server around one policy (see the module docstring).

    Args:
        policy: The server rule (e.g. ``lookup("async_sgd").build(params)``, or
            ``AsyncSGD(chain(clip_by_norm(c), scale(γ)))``).
        x0: Initial model (flat vector).
        num_workers: Number of workers n.
        seed: Root seed; the policy draws from ``stream(seed, Stream.POLICY)`` as
            in the engine (random assignment).
        recorder: Where rows go (default: a new one keeping every arrival).
        clock: Time source for arrivals (default: seconds since construction).
    """

    def __init__(
        self,
        policy: ServerPolicy[Any],
        x0: npt.ArrayLike,
        num_workers: int,
        *,
        seed: Seed = 0,
        recorder: Recorder | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(num_workers, bool) or not (
            isinstance(num_workers, int) and num_workers >= 1
        ):
            raise ConfigError(f"num_workers must be an integer >= 1, got {num_workers}")
        self.policy = policy
        self.num_workers = num_workers
        self.recorder = recorder if recorder is not None else Recorder()
        start = time.perf_counter()
        self._clock = clock or (lambda: time.perf_counter() - start)
        self._lock = threading.Lock()
        x = np.asarray(x0)
        self.dim = int(x.size)
        self._state = policy.init(x, num_workers, stream(seed, Stream.POLICY))
        #: Workers the policy gives a first job (``policy.start``).
        self.start = policy.start(self._state)
        self._next_job = 0
        self._pulled: list[deque[int]] = [deque() for _ in range(num_workers)]
        self.counts = {"arrivals": 0, "applied": 0, "discarded": 0, "skipped": 0}

    @property
    def version(self) -> int:
        """The number k of applied updates."""
        with self._lock:
            return int(self.policy.version(self._state))

    def params(self) -> Vector:
        """A copy of the current model x_k."""
        with self._lock:
            return np.array(self.policy.params(self._state), copy=True)

    def pull(self, worker: int | None = None) -> tuple[int, Vector]:
        """Return ``(version, x)`` for a new job (of ``worker``, if given: the job id
        is then matched by that worker's next ``push``)."""
        with self._lock:
            if worker is not None:
                check_worker(worker, self.num_workers)
                self._pulled[worker].append(self._next_job)
                self._next_job += 1
            x = np.array(self.policy.params(self._state), copy=True)
            return int(self.policy.version(self._state)), x

    def push(
        self,
        grad: npt.ArrayLike,
        version: int,
        worker: int,
        *,
        time: float | None = None,
        compute_time: float = 0.0,
    ) -> Reply:
        """Hand the policy one finished job and record it; return its reply.

        Args:
            grad: The job's result (a gradient; a client delta or model for a
                federated policy), computed at ``version``.
            version: The version ``pull`` returned with the model it used.
            worker: The worker that computed it.
            time: Arrival time for the record (default: the server's clock).
            compute_time: Time the worker spent, for the record.

        Raises:
            ConfigError: A worker out of range, a version from the future, or a
                result of the wrong length.
        """
        payload = np.asarray(grad)
        if payload.shape != (self.dim,):
            raise ConfigError(
                f"grad must have shape ({self.dim},), got {payload.shape}"
            )
        with self._lock:
            check_worker(worker, self.num_workers)
            now = int(self.policy.version(self._state))
            if isinstance(version, bool) or not 0 <= int(version) <= now:
                raise ConfigError(f"version must be in [0, {now}], got {version}")
            queue = self._pulled[worker]
            if queue:
                job = queue.popleft()
            else:
                job = self._next_job
                self._next_job += 1
            t = self._clock() if time is None else float(time)
            arrival = Arrival(job, worker, int(version), payload, t, compute_time)
            self._state, reply = self.policy.on_arrival(self._state, arrival)
            self.counts["arrivals"] += 1
            self.counts["applied"] += reply.applied
            self.counts["discarded"] += reply.discarded
            self.counts["skipped"] += reply.skipped
            self.recorder.record_arrival(arrival, now, reply)
            return reply
