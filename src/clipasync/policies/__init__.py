"""Server policies: one state machine per asynchronous method.

Each is a :class:`~clipasync.policies.base.ServerPolicy`, the server loop of Erickson &
Johansson (2026), "Clipping Makes Distributed and Federated Asynchronous SGD Robust to
Stragglers" (arXiv 2606.13287), Algorithms 1 and 2, with the update rule of one
method.
"""

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
