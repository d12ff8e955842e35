"""clipasync: asynchronous SGD that stays fast and stable with stragglers.

Clipping every applied gradient, x ← x − γ·min(1, c/‖g‖)·g, removes the dependence of
asynchronous SGD on the maximum delay (Erickson & Johansson 2026). This package holds
the algorithms (gradient transforms and server policies), a deterministic simulator of
straggling workers, a Ray runtime, and the diagnostics to measure it all.
"""

from clipasync.engine import RunResult, StopRule, Target, run
from clipasync.errors import (
    ClipasyncError,
    ConfigError,
    SimulationExhausted,
    WorkerFailed,
)
from clipasync.policies import (
    AsyncSGD,
    Rennala,
    Ringmaster,
    ServerPolicy,
    SyncMinibatch,
)
from clipasync.sim import SimulatedPool, simulate_timing
from clipasync.transforms import (
    GradientTransform,
    chain,
    clip_by_norm,
    identity,
    scale,
    scale_by_delay,
)
from clipasync.types import Arrival, Reply, UpdateContext, Vector

__version__ = "0.1.0"

__all__ = [
    "Arrival",
    "AsyncSGD",
    "ClipasyncError",
    "ConfigError",
    "GradientTransform",
    "Rennala",
    "Reply",
    "Ringmaster",
    "RunResult",
    "ServerPolicy",
    "SimulatedPool",
    "SimulationExhausted",
    "StopRule",
    "SyncMinibatch",
    "Target",
    "UpdateContext",
    "Vector",
    "WorkerFailed",
    "chain",
    "clip_by_norm",
    "identity",
    "run",
    "scale",
    "scale_by_delay",
    "simulate_timing",
]
