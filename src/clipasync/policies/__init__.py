"""Server policies: one state machine per asynchronous method.

Each is a :class:`~clipasync.policies.base.ServerPolicy`, the server loop of Erickson &
Johansson (2026), "Clipping Makes Distributed and Federated Asynchronous SGD Robust to
Stragglers" (arXiv 2606.13287), Algorithms 1 and 2, with the update rule of one
method.
"""

from clipasync.policies.async_sgd import AsyncSGD, AsyncState
from clipasync.policies.base import ServerPolicy
from clipasync.policies.dc_asgd import DCState, DelayCompensated
from clipasync.policies.fedasync import FedAsync, FedAsyncState
from clipasync.policies.fedavg import FedAvg, FedAvgState
from clipasync.policies.fedbuff import FedBuff, FedBuffState
from clipasync.policies.malenia import Malenia, MaleniaState
from clipasync.policies.msync import MSync, RoundState
from clipasync.policies.rennala import BatchState, Rennala, SyncMinibatch
from clipasync.policies.ringleader import Ringleader, RingleaderState
from clipasync.policies.ringmaster import Ringmaster, RingmasterState

__all__ = [
    "AsyncSGD",
    "AsyncState",
    "BatchState",
    "DCState",
    "DelayCompensated",
    "FedAsync",
    "FedAsyncState",
    "FedAvg",
    "FedAvgState",
    "FedBuff",
    "FedBuffState",
    "MSync",
    "Malenia",
    "MaleniaState",
    "Rennala",
    "Ringleader",
    "RingleaderState",
    "Ringmaster",
    "RingmasterState",
    "RoundState",
    "ServerPolicy",
    "SyncMinibatch",
]
