"""Per-arrival and per-evaluation records of a run, as columns.

One row per arrival (time, worker, version, delay, applied/discarded/skipped,
pre-clip norm, clipped, stepsize, compute time) and one row per evaluation
(time, version, metrics). Columns are plain lists while running (cheap appends) and
numpy arrays afterwards; :mod:`clipasync.io` writes them as CSV so that
``pandas.read_csv`` loads a run in one line.

Optional columns (:data:`OPTIONAL_ARRIVAL_COLUMNS`: the client ``delta_norm``,
``staleness_weight`` and ``mixing`` that FedBuff and FedAsync put in
``Reply.info``) are added after the fixed ones the first time a reply carries the
key, with NaN for the rows before it and for later replies without it. A run whose
policy never reports them has exactly the fixed columns, so its CSV is unchanged, and
a core run pays one dict lookup per optional key per arrival.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.types import Arrival, Reply

ARRIVAL_COLUMNS = (
    "time",
    "job",
    "worker",
    "version",
    "delay",
    "applied",
    "discarded",
    "skipped",
    "pre_clip_norm",
    "clipped",
    "stepsize",
    "compute_time",
)

#: ``Reply.info`` keys recorded as extra columns when a policy reports them.
OPTIONAL_ARRIVAL_COLUMNS = ("delta_norm", "staleness_weight", "mixing")


@dataclass
class Recorder:
    """Collects arrival rows and evaluation rows.

    Args:
        keep_arrivals: Record one row per arrival (turn off for very long runs where
            only evaluations matter).
    """

    keep_arrivals: bool = True
    arrivals: dict[str, list[float]] = field(
        default_factory=lambda: {c: [] for c in ARRIVAL_COLUMNS}
    )
    evals: list[dict[str, float]] = field(default_factory=list)

    def record_arrival(self, arrival: Arrival, version: int, reply: Reply) -> None:
        """Append the row of one arrival (``version``: server version before it)."""
        if not self.keep_arrivals:
            return
        a = self.arrivals
        info = reply.info
        a["time"].append(arrival.time)
        a["job"].append(arrival.job)
        a["worker"].append(arrival.worker)
        a["version"].append(version)
        a["delay"].append(version - arrival.version)
        a["applied"].append(reply.applied)
        a["discarded"].append(reply.discarded)
        a["skipped"].append(reply.skipped)
        a["pre_clip_norm"].append(info.get("pre_clip_norm", math.nan))
        a["clipped"].append(info.get("clipped", math.nan))
        a["stepsize"].append(info.get("stepsize", math.nan))
        a["compute_time"].append(arrival.compute_time)
        for key in OPTIONAL_ARRIVAL_COLUMNS:
            col = a.get(key)
            value = info.get(key)
            if col is None:
                if value is None:
                    continue
                col = a[key] = [math.nan] * (len(a["time"]) - 1)
            col.append(math.nan if value is None else value)

    def record_eval(self, time: float, version: int, metrics: dict[str, float]) -> None:
        """Append one evaluation row."""
        self.evals.append({"time": time, "version": float(version), **metrics})

    def arrival_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Return the arrival columns as numpy arrays."""
        ints = {"job", "worker", "version", "delay"}
        bools = {"applied", "discarded", "skipped"}
        out: dict[str, npt.NDArray[Any]] = {}
        for name, col in self.arrivals.items():
            dtype = np.int64 if name in ints else bool if name in bools else np.float64
            out[name] = np.asarray(col, dtype=dtype)
        return out
