"""Asynchronous federated learning: non-IID clients, local training, availability.

The server rules live with the other policies (:class:`clipasync.policies.fedbuff.
FedBuff`, :class:`clipasync.policies.fedasync.FedAsync`, and ``AsyncSGD(assign=
"random")``, Erickson & Johansson 2026, Algorithm 2); this package holds what is
specific to clients:

- :mod:`~clipasync.federated.partition`: Dirichlet label skew, k-shard, natural splits;
- :mod:`~clipasync.federated.client`: ``local_sgd_task``, Q local steps returning a
  (clipped) delta or model as one job;
- :mod:`~clipasync.federated.staleness`: s(delay) weights (constant, polynomial, hinge);
- :mod:`~clipasync.federated.server_opt`: server momentum for FedBuff;
- :mod:`~clipasync.federated.availability`: clients that vanish mid-job
  (:class:`UnreliablePool`) and an open system with Poisson job starts
  (:class:`OpenSystemPool`).

References:
    Xie, Koyejo & Gupta (2019), "Asynchronous Federated Optimization".
    Nguyen et al. (AISTATS 2022), "Federated Learning with Buffered Asynchronous
    Aggregation".
"""

from __future__ import annotations

from clipasync.federated.availability import (
    BernoulliDropout,
    DropoutModel,
    OpenSystemPool,
    PeriodicOffline,
    ScriptedDropout,
    UnreliablePool,
    make_dropout,
)
from clipasync.federated.client import LocalObjective, local_sgd_task
from clipasync.federated.partition import (
    dirichlet_label_partition,
    natural_partition,
    shard_partition,
)
from clipasync.federated.server_opt import momentum
from clipasync.federated.staleness import (
    STALENESS,
    ConstantStaleness,
    HingeStaleness,
    PolynomialStaleness,
    StalenessFn,
    make_staleness,
)

__all__ = [
    "STALENESS",
    "BernoulliDropout",
    "ConstantStaleness",
    "DropoutModel",
    "HingeStaleness",
    "LocalObjective",
    "OpenSystemPool",
    "PeriodicOffline",
    "PolynomialStaleness",
    "ScriptedDropout",
    "StalenessFn",
    "UnreliablePool",
    "dirichlet_label_partition",
    "local_sgd_task",
    "make_dropout",
    "make_staleness",
    "momentum",
    "natural_partition",
    "shard_partition",
]
