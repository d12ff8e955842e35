"""Timing-only simulation of Algorithm 1: update rate and delays, no gradients.

Each worker is a renewal process independent of the others, so for a stationary
random model the event order is a sort of per-worker partial sums (vectorised); with
ties (fixed times) the heap event loop decides by start order, as
:class:`~clipasync.sim.pool.SimulatedPool` does.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.sim.pool import TIE_BREAKS, TieBreak, TimeSampler, _check_times
from clipasync.timing import ComputeTimeModel, FixedTimes
from clipasync.types import Seed


@dataclass(frozen=True)
class TimingSummary:
    """Outcome of :func:`simulate_timing`.

    Attributes:
        num_updates: Arrivals simulated (each one an update under Algorithm 1).
        end_time: Simulated time of the last arrival.
        updates_per_time: num_updates / end_time.
        delays: Delay of each update, in arrival order.
        workers: Worker of each update.
        times: Arrival time of each update.
    """

    num_updates: int
    end_time: float
    updates_per_time: float
    delays: npt.NDArray[np.int64]
    workers: npt.NDArray[np.int64]
    times: npt.NDArray[np.float64]

    def mean_delay(self, worker: int | None = None) -> float:
        """Mean delay over all updates, or over one worker's updates."""
        d = self.delays if worker is None else self.delays[self.workers == worker]
        return float(d.mean()) if d.size else float("nan")


def simulate_timing(
    timing: ComputeTimeModel,
    num_updates: int,
    seed: Seed = 0,
    tie_break: TieBreak = "start",
) -> TimingSummary:
    """Simulate Algorithm 1 (every worker busy, re-dispatched on return) without
    gradients, and report update rate and delays.

    It draws the same compute times as :class:`SimulatedPool` for the same seed and
    breaks ties the same way, so its delays equal those of a full run with the same
    timing model (a test checks this).

    Two exact algorithms: under Algorithm 1 each worker is a renewal process
    independent of the others (worker i's j-th job ends at τ_{i,1} + … + τ_{i,j}), so
    for a stationary random model the event order is a sort of the per-worker partial
    sums, and the delay of an arrival is its rank minus the rank of the same worker's
    previous arrival minus one — all vectorised, a few million events per second
    whatever the number of workers. When two events share a finish time the order
    depends on the start-order tie-break, and the event loop (a heap) is used
    instead, about 10^6 events per second.

    Args:
        timing: Compute-time model.
        num_updates: Number of arrivals to simulate (> 0).
        seed: Root seed.
        tie_break: Order of simultaneous finishes, as in
            :class:`~clipasync.sim.SimulatedPool` (start order or worker index).
    """
    if num_updates <= 0:
        raise ConfigError(f"num_updates must be positive, got {num_updates}")
    if tie_break not in TIE_BREAKS:
        raise ConfigError(f"tie_break must be 'start' or 'worker', got {tie_break!r}")
    if timing.stationary and not isinstance(timing, FixedTimes):
        summary = _simulate_renewal(timing, num_updates, seed)
        if summary is not None:
            return summary
    return _simulate_events(timing, num_updates, seed, tie_break == "worker")


def _simulate_renewal(
    timing: ComputeTimeModel, num_updates: int, seed: Seed
) -> TimingSummary | None:
    """Vectorised Algorithm 1 for stationary models; ``None`` if finish times tie."""
    sampler = TimeSampler(timing, seed)
    n = timing.num_workers
    rate = float(np.sum(1.0 / timing.mean_times()))
    horizon = 1.2 * num_updates / rate
    finishes: list[npt.NDArray[np.float64]] = [np.empty(0)] * n
    while True:
        for w in range(n):
            f = finishes[w]
            last = float(f[-1]) if f.size else 0.0
            if f.size and last > horizon:
                continue
            parts = [f]
            while True:
                block = sampler.take_block(w, check=False)  # checked below, at once
                # Sequential sums, exactly as the event loop adds t + τ.
                sums = np.add.accumulate(np.concatenate(([last], block)))[1:]
                parts.append(sums)
                last = float(sums[-1])
                if not last <= horizon:  # (NaN also ends the loop; checked below)
                    break
            finishes[w] = np.concatenate(parts)  # once per pass: no quadratic copy
        counts = np.array(
            [int(np.searchsorted(f, horizon, side="right")) for f in finishes]
        )
        if counts.sum() >= num_updates + 1:
            break
        horizon *= 1.5
    times = np.concatenate([f[:c] for f, c in zip(finishes, counts, strict=True)])
    for w, f in enumerate(finishes):
        # Partial sums increase strictly iff every time is positive; NaN fails too.
        if not (f[0] > 0 and np.all(np.diff(f) > 0) and f[-1] < math.inf):
            _check_times(np.diff(np.concatenate(([0.0], f))), w)
    owner = np.repeat(np.arange(n), counts)
    job = np.concatenate([np.arange(c) for c in counts])
    order = np.argsort(times, kind="stable")[: num_updates + 1]
    t_sorted = times[order]
    if np.any(t_sorted[1:] == t_sorted[:-1]):
        return None  # a tie: the start-order tie-break decides, use the event loop
    order = order[:num_updates]
    times, workers, jobs = times[order], owner[order], job[order]
    # rank[flat index of (worker, job)] = position of that arrival in time order.
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    flat = offsets[workers] + jobs
    rank = np.full(int(counts.sum()), -1, dtype=np.int64)
    rank[flat] = np.arange(num_updates)
    k = np.arange(num_updates)
    dispatched = np.where(jobs > 0, rank[np.maximum(flat - 1, 0)] + 1, 0)
    delays = (k - dispatched).astype(np.int64)
    end = float(times[-1])
    return TimingSummary(
        num_updates, end, num_updates / end, delays, workers.astype(np.int64), times
    )


def _simulate_events(
    timing: ComputeTimeModel, num_updates: int, seed: Seed, by_worker: bool = False
) -> TimingSummary:
    """Event-loop Algorithm 1 (exact with ties; ``by_worker``: ties by index)."""
    nxt = TimeSampler(timing, seed).next
    n = timing.num_workers
    # A heap of distinct finish times (floats compare several times faster than
    # tuples) and, per finish time, the (worker, version at dispatch) entries in start
    # order: exactly the (finish, seq) tie-break of SimulatedPool.
    heap: list[float] = []
    due: dict[float, deque[tuple[int, int]]] = {}
    push, pop = heapq.heappush, heapq.heappop
    for w in range(n):
        t0 = nxt(w, 0.0)
        if t0 in due:
            due[t0].append((w, 0))
        else:
            due[t0] = deque(((w, 0),))
            push(heap, t0)
    delays = np.empty(num_updates, dtype=np.int64)
    workers = np.empty(num_updates, dtype=np.int64)
    times = np.empty(num_updates, dtype=np.float64)
    t = 0.0
    for k in range(num_updates):
        t = heap[0]
        entries = due[t]
        if by_worker and len(entries) > 1:
            first = min(entries)  # (worker, version): the smallest worker index
            entries.remove(first)
            w, v = first
        else:
            w, v = entries.popleft()
        if not entries:
            pop(heap)
            del due[t]
        delays[k] = k - v
        workers[k] = w
        times[k] = t
        finish = t + nxt(w, t)
        if finish in due:
            due[finish].append((w, k + 1))
        else:
            due[finish] = deque(((w, k + 1),))
            push(heap, finish)
    return TimingSummary(num_updates, t, num_updates / t, delays, workers, times)
