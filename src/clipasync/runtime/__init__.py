"""Real worker pools behind the engine's ``WorkerPool`` interface.

- :class:`LocalPool`: threads in this process, wall clock (also the proof that the
  simulator and a real pool share the algorithm layer).
- :class:`RayPool`: workers in Ray actors, locally or on a cluster
  (:func:`start_ray`, :mod:`clipasync.runtime.ray_session`: token authentication,
  fast connection checks, a local Ray that ends with its driver); Ray itself is
  imported only when a pool or a session starts. At model scale its server updates
  in place (:mod:`clipasync.runtime.inplace`) or on shard actors
  (:mod:`clipasync.runtime.shards`), with the pure path's iterates.
- :class:`EmbeddedServer`: a policy behind ``pull``/``push`` for your own workers.
- :func:`run_resumable`: :func:`clipasync.engine.run` with atomic checkpoints.
- :mod:`clipasync.runtime.trace`: measured compute times as a replayable trace, and
  the simulated-vs-measured comparison.
"""

from __future__ import annotations

from clipasync.runtime._oracle import (
    OracleWorker,
    ProblemTask,
    StreamState,
    TaskFactory,
)
from clipasync.runtime.driver import run_resumable
from clipasync.runtime.embedded import EmbeddedServer
from clipasync.runtime.local_pool import LocalPool
from clipasync.runtime.ray_pool import RayPool
from clipasync.runtime.ray_session import start_ray

__all__ = [
    "EmbeddedServer",
    "LocalPool",
    "OracleWorker",
    "ProblemTask",
    "RayPool",
    "StreamState",
    "TaskFactory",
    "run_resumable",
    "start_ray",
]
