"""Server policies: one state machine per asynchronous method (DESIGN.md §3)."""

from clipasync.policies.async_sgd import AsyncSGD, AsyncState
from clipasync.policies.base import ServerPolicy
from clipasync.policies.fedasync import FedAsync, FedAsyncState
from clipasync.policies.fedbuff import FedBuff, FedBuffState
from clipasync.policies.rennala import BatchState, Rennala, SyncMinibatch
from clipasync.policies.ringmaster import Ringmaster, RingmasterState

__all__ = [
    "AsyncSGD",
    "AsyncState",
    "BatchState",
    "FedAsync",
    "FedAsyncState",
    "FedBuff",
    "FedBuffState",
    "Rennala",
    "Ringmaster",
    "RingmasterState",
    "ServerPolicy",
    "SyncMinibatch",
]
