"""The simulated worker pool: a virtual clock, seeded compute times, availability.

``pool`` holds :class:`SimulatedPool` (the ``WorkerPool`` of the simulator),
``timing_only`` the gradient-free fast path, ``dropout`` the models of clients that
vanish mid-job, ``availability`` the pools that lose such jobs (and open systems).
"""

from clipasync.sim.availability import OpenSystemPool, UnreliablePool
from clipasync.sim.dropout import (
    BernoulliDropout,
    DropoutModel,
    PeriodicOffline,
    ScriptedDropout,
    make_dropout,
)
from clipasync.sim.pool import SimulatedPool, TimeSampler
from clipasync.sim.timing_only import TimingSummary, simulate_timing
from clipasync.types import Task

__all__ = [
    "BernoulliDropout",
    "DropoutModel",
    "OpenSystemPool",
    "PeriodicOffline",
    "ScriptedDropout",
    "SimulatedPool",
    "Task",
    "TimeSampler",
    "TimingSummary",
    "UnreliablePool",
    "make_dropout",
    "simulate_timing",
]
