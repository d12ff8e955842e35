"""Server policies: one state machine per asynchronous method (DESIGN.md §3)."""

from clipasync.policies.async_sgd import AsyncSGD, AsyncState
from clipasync.policies.base import ServerPolicy
from clipasync.policies.rennala import BatchState, Rennala, SyncMinibatch
from clipasync.policies.ringmaster import Ringmaster, RingmasterState

__all__ = [
    "AsyncSGD",
    "AsyncState",
    "BatchState",
    "Rennala",
    "Ringmaster",
    "RingmasterState",
    "ServerPolicy",
    "SyncMinibatch",
]
