"""Ringleader ASGD (Maranjyan & Richtárik 2025): asynchronous SGD with optimal time
complexity when the data differ across workers.

The server keeps a table of per-worker gradient sums G_i and counts b_i
(:mod:`clipasync.policies.tables`) and steps with the mean over workers of each
worker's mean, ḡ = (1/n) Σ_i G_i/b_i, so every f_i weighs 1/n. It works in rounds of
exactly n updates, one per worker:

* **Phase 1** (collect): every arriving gradient joins its worker's entry and the
  worker computes again at the current point; no update until every worker has an
  entry. The worker whose arrival completes the table triggers the round's first
  update x ← x − T(ḡ) and gets the new point.
* **Phase 2** (update): a gradient from a worker that has not yet been updated this
  round joins its entry, the server updates with the table's ḡ and sends that worker
  the new point. A gradient from a worker already updated this round is *buffered*
  (a second table G_i⁺, b_i⁺) and the worker computes again at the current point.
  Once all n workers were updated the round ends: the buffer becomes the table and a
  new Phase 1 starts (workers with buffered gradients already count as present).

Nothing is discarded (in contrast to Ringmaster ASGD, which drops stale gradients:
with heterogeneous data that would drop a slow worker's f_i); the rounds bound every
delay by 2n − 2 and no worker ever idles.

Sources: the rule follows the paper (Maranjyan & Richtárik 2025, arXiv 2509.22860:
gradient table, Phase 1 / Phase 2 rounds, buffer G⁺) and, for the order of events,
the ``RingleaderASGD`` class of the public simulator of the Tyurin–Richtárik line
(Phase 2 starts with the last finisher of Phase 1; extra arrivals go to the buffer;
at the round's end the buffer is promoted).

Note:
    The paper's stepsize is γ = min{1/(8nL), εB/(10Lσ²)}; here the transform T holds
    the stepsize (and optional clipping, which the paper does not study). The
    simulator updates its table mean incrementally; here ḡ is recomputed from the
    sums at each update (same value in exact arithmetic, reproducible in floats).
    Clipping applies to ḡ, the table's mean.

References:
    Maranjyan & Richtárik (2025), "Ringleader ASGD: The First Asynchronous SGD with
    Optimal Time Complexity under Data Heterogeneity", arXiv 2509.22860 (ICLR 2026).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from clipasync.policies import tables
from clipasync.policies.base import (
    PolicyBase,
    aggregate_step,
    check_num_workers,
    payload_info,
    skipped_reply,
)
from clipasync.transforms.base import GradientTransform
from clipasync.types import Arrival, Reply, Vector


@dataclass(frozen=True, slots=True)
class RingleaderState:
    """State of :class:`Ringleader`.

    Attributes:
        x: Current iterate x_k.
        version: k.
        transform_state: State of the transform.
        num_workers: n.
        sums: G_i of the round's table (``None``: no entry).
        counts: b_i.
        next_sums: G_i⁺, gradients buffered for the next round.
        next_counts: b_i⁺.
        pending: Phase 2: the workers not yet updated this round; ``None`` in
            Phase 1.
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    sums: tables.Sums
    counts: tables.Counts
    next_sums: tables.Sums
    next_counts: tables.Counts
    pending: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Ringleader(PolicyBase[RingleaderState]):
    """Ringleader ASGD: rounds of n table-mean updates, one per worker.

    Args:
        transform: Applied to the table mean (1/n) Σ_i G_i/b_i.
        name: Label used in reports.
    """

    transform: GradientTransform
    name: str = "ringleader"

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> RingleaderState:
        del rng
        n = check_num_workers(num_workers)
        return RingleaderState(
            x0, 0, self.transform.init(x0), n, *tables.empty(n), *tables.empty(n)
        )

    def on_arrival(
        self, state: RingleaderState, arrival: Arrival
    ) -> tuple[RingleaderState, Reply]:
        w, n = arrival.worker, state.num_workers
        g = arrival.payload
        info = payload_info(g)
        if info is None:
            return state, skipped_reply(w)
        if state.pending is not None and w not in state.pending:
            # Phase 2, w already updated this round: buffer for the next round.
            nsums, ncounts = tables.add(state.next_sums, state.next_counts, w, g)
            new = replace(state, next_sums=nsums, next_counts=ncounts)
            return new, Reply(applied=False, dispatch=(w,), info=info)
        sums, counts = tables.add(state.sums, state.counts, w, g)
        if state.pending is None and min(counts) == 0:
            # Phase 1: the table still misses a worker.
            return replace(state, sums=sums, counts=counts), Reply(
                applied=False, dispatch=(w,), info=info
            )
        # Phase 1 completed by w, or w's turn in Phase 2: one update, w gets x_{k+1}.
        everyone = tuple(range(n)) if state.pending is None else state.pending
        pending = tuple(i for i in everyone if i != w)
        mean = tables.worker_mean(sums, counts)  # None: timing-only run, x is kept
        x, ts = aggregate_step(self.transform, state, mean, info)
        if pending:
            new = replace(
                state,
                x=x,
                version=state.version + 1,
                transform_state=ts,
                sums=sums,
                counts=counts,
                pending=pending,
            )
        else:  # the round's n-th update: the buffer becomes the table
            new = RingleaderState(
                x,
                state.version + 1,
                ts,
                n,
                state.next_sums,
                state.next_counts,
                *tables.empty(n),
            )
        return new, Reply(applied=True, dispatch=(w,), info=info)

    def to_config(self) -> dict[str, Any]:
        return {"policy": "Ringleader"}
