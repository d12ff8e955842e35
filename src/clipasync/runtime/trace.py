"""Measured runs as replayable traces, and the sim-to-real check.

* :func:`write_trace` turns a run's arrival records (worker, measured compute time,
  job id) into the CSV that :meth:`clipasync.timing.TraceTimes.from_csv` reads
  (columns ``worker,compute_time``, one row per job in job order, times in units of
  ``time_unit_s``), so the simulator can replay what the real workers did.
* :func:`compare_sim_to_real` puts the simulated and measured update rate and delay
  distribution side by side; :func:`plot_sim_vs_real` draws the delay histograms.

Note:
    Only jobs that arrived are in the records; a cancelled job's time is not, so a
    replay of a run with cancellations sees each worker slightly faster.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies import AsyncSGD
from clipasync.policies.base import ServerPolicy
from clipasync.recorder import Recorder
from clipasync.sim import SimulatedPool
from clipasync.timing import ComputeTimeModel
from clipasync.transforms import identity

Columns = dict[str, npt.NDArray[Any]]
QUANTILES = (0.5, 0.9, 0.99)


def _columns(records: Recorder | Columns) -> Columns:
    return records.arrival_arrays() if isinstance(records, Recorder) else records


def write_trace(
    records: Recorder | Columns, path: str | os.PathLike[str], time_unit_s: float
) -> Path:
    """Write the measured compute times of a run as a ``TraceTimes`` CSV.

    Args:
        records: The run's recorder or its arrival columns (``job``, ``worker``,
            ``compute_time`` in seconds).
        path: Output CSV.
        time_unit_s: Seconds per trace unit (the run's ``time_unit_s``).

    Raises:
        ConfigError: If there are no arrivals or ``time_unit_s`` is not positive.
    """
    if not (time_unit_s > 0):
        raise ConfigError(f"time_unit_s must be positive, got {time_unit_s}")
    cols = _columns(records)
    if len(cols["job"]) == 0:
        raise ConfigError("the run has no arrivals to export")
    order = np.argsort(cols["job"], kind="stable")
    p = Path(path)
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["worker", "compute_time"])
        for i in order:
            w.writerow(
                [
                    int(cols["worker"][i]),
                    repr(float(cols["compute_time"][i]) / time_unit_s),
                ]
            )
    return p


@dataclass(frozen=True)
class SimRealComparison:
    """Simulated vs measured rates and delays of one run.

    Attributes:
        measured_rate: Applied updates per second of the real run.
        simulated_rate: The simulator's prediction (updates per second).
        rate_ratio: measured / simulated.
        measured_delays: Delays of the applied updates of the real run.
        simulated_delays: Delays of the applied updates of the simulation.
        quantiles: ``{"mean"|"p50"|"p90"|"p99"|"max": (simulated, measured)}``.
        wasserstein: Mean absolute difference between the two delay quantile
            functions (0 when the distributions agree).
    """

    measured_rate: float
    simulated_rate: float
    rate_ratio: float
    measured_delays: npt.NDArray[np.int64]
    simulated_delays: npt.NDArray[np.int64]
    quantiles: dict[str, tuple[float, float]]
    wasserstein: float


def _summary(d: npt.NDArray[np.int64]) -> dict[str, float]:
    if d.size == 0:
        return {k: float("nan") for k in ("mean", "p50", "p90", "p99", "max")}
    out = {"mean": float(d.mean()), "max": float(d.max())}
    for q in QUANTILES:
        out[f"p{round(q * 100)}"] = float(np.quantile(d, q))
    return out


def compare_sim_to_real(
    records: Recorder | Columns,
    timing: ComputeTimeModel,
    time_unit_s: float,
    *,
    policy: ServerPolicy[Any] | None = None,
    seed: int = 0,
) -> SimRealComparison:
    """Compare a real run with the simulator's prediction for the same set-up.

    The simulator runs ``policy`` (default: Algorithm 1, ``AsyncSGD``) timing-only on
    ``timing`` for as many arrivals as the real run had; pass the config's model to
    check the model, or ``TraceTimes.from_csv`` of :func:`write_trace` to measure
    the runtime's overhead alone.

    Args:
        records: Arrival records of the real run (times in seconds).
        timing: Compute-time model in units of ``time_unit_s``.
        time_unit_s: Seconds per unit.
        policy: The run's policy (its hyperparameters do not matter here).
        seed: Seed of the simulated timing streams.
    """
    cols = _columns(records)
    n = len(cols["time"])
    if n == 0:
        raise ConfigError("the run has no arrivals to compare")
    applied = cols["applied"].astype(bool)
    measured_rate = float(applied.sum()) / float(cols["time"][-1])
    default: Any = AsyncSGD(identity())  # frozen dataclass: read-only ``name``
    pol: ServerPolicy[Any] = policy if policy is not None else default
    sim = run(
        pol,
        SimulatedPool(timing, None, seed),
        np.zeros(1),
        stop=StopRule(max_arrivals=n),
        rng=np.random.default_rng(seed),
    )
    s = sim.recorder.arrival_arrays()
    s_applied = s["applied"].astype(bool)
    simulated_rate = float(s_applied.sum()) / (float(s["time"][-1]) * time_unit_s)
    real_d = cols["delay"][applied].astype(np.int64)
    sim_d = s["delay"][s_applied].astype(np.int64)
    a, b = _summary(sim_d), _summary(real_d)
    grid = np.linspace(0.0, 1.0, 201)
    w = float(np.mean(np.abs(np.quantile(sim_d, grid) - np.quantile(real_d, grid))))
    return SimRealComparison(
        measured_rate=measured_rate,
        simulated_rate=simulated_rate,
        rate_ratio=measured_rate / simulated_rate,
        measured_delays=real_d,
        simulated_delays=sim_d,
        quantiles={k: (a[k], b[k]) for k in a},
        wasserstein=w,
    )


def plot_sim_vs_real(cmp: SimRealComparison, path: str | os.PathLike[str]) -> Path:
    """Save delay histograms (simulated vs measured) with both update rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    top = int(
        max(cmp.simulated_delays.max(initial=0), cmp.measured_delays.max(initial=0))
    )
    bins = [i - 0.5 for i in range(top + 2)]
    for what, delays, rate in (
        ("simulated", cmp.simulated_delays, cmp.simulated_rate),
        ("measured", cmp.measured_delays, cmp.measured_rate),
    ):
        label = f"{what} ({rate:.1f} upd/s)"
        ax.hist(delays, bins=bins, alpha=0.5, density=True, label=label)
    ax.set_xlabel("delay")
    ax.set_ylabel("fraction of updates")
    ax.legend()
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p
