"""Scripted compute times under which the in-process pool replays the simulator.

:class:`~clipasync.runtime.LocalPool` (threads, wall clock) and
:class:`~clipasync.sim.SimulatedPool` (virtual clock) deliver the same arrivals in the
same order from the same per-worker oracle streams when the simulated schedule has no
near-ties: arrivals far apart, and every cancelled running job far from its natural
end when it is cancelled (else the real worker may already be computing it).
:func:`scripted_trace` searches seeds for a trace whose simulated schedule has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from clipasync.engine import RunResult
from clipasync.sim import SimulatedPool
from clipasync.timing import TraceTimes


class WatchedPool(SimulatedPool):
    """A simulator that remembers when each cancelled running job would have ended."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.cut: list[tuple[float, float]] = []  # (cancel time, would-be finish)

    def cancel(self, job: int) -> None:
        j = self._jobs.get(job)
        if j is not None and j.start >= 0:
            self.cut.append((self.now(), j.start + j.compute_time))
        super().cancel(job)


def well_separated(res: RunResult, pool: WatchedPool, min_gap: float) -> bool:
    """Every two arrivals, and every cancel and the end of its job, lie ``min_gap``
    apart."""
    times = np.asarray(res.recorder.arrivals["time"])
    if np.any(np.diff(times) < min_gap):
        return False
    return all(f - t >= min_gap for t, f in pool.cut)


Simulate = Callable[[TraceTimes, int], tuple[RunResult, WatchedPool]]


def scripted_trace(
    simulate: Simulate,
    *,
    num_workers: int,
    arrivals: int,
    min_gap: float,
    tries: int = 3000,
) -> tuple[TraceTimes, int]:
    """Return a trace of integer times in [40, 160] (and its seed) whose simulated run
    (``simulate(trace, seed)``, stopped after ``arrivals`` arrivals) has no near-ties.
    """
    for seed in range(tries):
        rng = np.random.default_rng(seed)
        times = tuple(
            tuple(float(t) for t in rng.integers(40, 161, size=arrivals + 12))
            for _ in range(num_workers)
        )
        timing = TraceTimes(times)
        res, pool = simulate(timing, seed)
        if res.counts["arrivals"] == arrivals and well_separated(res, pool, min_gap):
            return timing, seed
    raise AssertionError("no well-separated trace found")  # pragma: no cover
