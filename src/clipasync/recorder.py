"""Per-arrival and per-evaluation records of a run, as columns.

One row per arrival (time, worker, version, delay, applied/discarded/skipped,
pre-clip norm, clipped, stepsize, compute time) and one row per evaluation
(time, version, arrivals so far, metrics). Columns are plain lists while running
(cheap appends) and numpy arrays afterwards; :mod:`clipasync.io` writes them as CSV
so that ``pandas.read_csv`` loads a run in one line.

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

    ``record_arrival`` is on the simulator's hot path, so it appends one tuple (the
    reply's info dict is kept by reference, not copied); the rows are turned into
    columns the first time :attr:`arrivals` is read.

    Args:
        keep_arrivals: Record one row per arrival (turn off for very long runs where
            only evaluations matter).
    """

    keep_arrivals: bool = True
    evals: list[dict[str, float]] = field(default_factory=list)
    _columns: dict[str, list[Any]] = field(
        default_factory=lambda: {c: [] for c in ARRIVAL_COLUMNS}, repr=False
    )
    _rows: list[tuple[Any, ...]] = field(default_factory=list, repr=False)

    @property
    def arrivals(self) -> dict[str, list[Any]]:
        """The arrival columns (lists), including the optional ones seen so far."""
        if self._rows:
            self._flush()
        return self._columns

    def _flush(self) -> None:
        cols = self._columns
        start = len(cols["time"])
        nan = math.nan
        for t, job, w, version, delay, app, disc, skip, info, ct in self._rows:
            cols["time"].append(t)
            cols["job"].append(job)
            cols["worker"].append(w)
            cols["version"].append(version)
            cols["delay"].append(delay)
            cols["applied"].append(app)
            cols["discarded"].append(disc)
            cols["skipped"].append(skip)
            cols["pre_clip_norm"].append(info.get("pre_clip_norm", nan))
            cols["clipped"].append(info.get("clipped", nan))
            cols["stepsize"].append(info.get("stepsize", nan))
            cols["compute_time"].append(ct)
        for key in OPTIONAL_ARRIVAL_COLUMNS:
            values = [row[8].get(key) for row in self._rows]
            if key not in cols:
                if all(v is None for v in values):
                    continue
                cols[key] = [nan] * start
            cols[key].extend(nan if v is None else v for v in values)
        self._rows.clear()

    def record_arrival(self, arrival: Arrival, version: int, reply: Reply) -> None:
        """Append the row of one arrival (``version``: server version before it)."""
        if self.keep_arrivals:
            self._rows.append(
                (
                    arrival.time,
                    arrival.job,
                    arrival.worker,
                    version,
                    version - arrival.version,
                    reply.applied,
                    reply.discarded,
                    reply.skipped,
                    reply.info,
                    arrival.compute_time,
                )
            )

    def extend_arrivals(self, columns: dict[str, list[Any]]) -> None:
        """Append many arrival rows given as the fixed columns (each a list of one
        length; a batched run records its configurations this way)."""
        if not self.keep_arrivals:
            return
        if self._rows:
            self._flush()
        lengths = {len(columns[c]) for c in ARRIVAL_COLUMNS}
        extra = set(self._columns) - set(ARRIVAL_COLUMNS)
        if len(lengths) != 1 or set(columns) != set(ARRIVAL_COLUMNS) or extra:
            raise ValueError("extend_arrivals needs every fixed column, of one length")
        for c in ARRIVAL_COLUMNS:
            self._columns[c].extend(columns[c])

    def record_eval(
        self,
        time: float,
        version: int,
        metrics: dict[str, float],
        arrivals: int | None = None,
    ) -> None:
        """Append one evaluation row: ``time``, ``version`` (applied updates),
        ``arrivals`` (gradients received so far, when given), then the metrics."""
        row: dict[str, float] = {"time": time, "version": float(version)}
        if arrivals is not None:
            row["arrivals"] = float(arrivals)
        row.update(metrics)
        self.evals.append(row)

    def arrival_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Return the arrival columns as numpy arrays."""
        ints = {"job", "worker", "version", "delay"}
        bools = {"applied", "discarded", "skipped"}
        out: dict[str, npt.NDArray[Any]] = {}
        for name, col in self.arrivals.items():
            dtype = np.int64 if name in ints else bool if name in bools else np.float64
            out[name] = np.asarray(col, dtype=dtype)
        return out
