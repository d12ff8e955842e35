"""Real worker pools behind the engine's ``WorkerPool`` interface.

- :class:`LocalPool`: threads in this process, wall clock (also the proof that the
  simulator and a real pool share the algorithm layer).
- :class:`RayPool`: one Ray actor per worker, locally or on a cluster
  (:func:`start_ray`); Ray is imported only there, lazily.
- :func:`run_resumable`: :func:`clipasync.engine.run` with atomic checkpoints.
- :mod:`clipasync.runtime.trace`: measured compute times as a replayable trace, and
  the simulated-vs-measured comparison.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clipasync.runtime._oracle import (
    OracleWorker,
    ProblemTask,
    StreamState,
    TaskFactory,
)
from clipasync.runtime.local_pool import LocalPool

if TYPE_CHECKING:
    from clipasync.runtime.driver import run_resumable
    from clipasync.runtime.ray_pool import RayPool, start_ray

__all__ = [
    "LocalPool",
    "OracleWorker",
    "ProblemTask",
    "RayPool",
    "StreamState",
    "TaskFactory",
    "run_resumable",
    "start_ray",
]

_LAZY = {
    "RayPool": "clipasync.runtime.ray_pool",
    "start_ray": "clipasync.runtime.ray_pool",
    "run_resumable": "clipasync.runtime.driver",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
