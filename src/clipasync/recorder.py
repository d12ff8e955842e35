"""Per-arrival and per-evaluation records of a run, as columns.

One row per arrival (time, worker, version, delay, applied/discarded/skipped,
pre-clip norm, clipped, stepsize, compute time) and one row per evaluation
(time, version, arrivals so far, metrics). Columns are plain lists while running
(cheap appends) and numpy arrays afterwards; :mod:`clipasync.io` writes them as CSV
so that ``pandas.read_csv`` loads a run in one line.

Optional columns (:data:`OPTIONAL_ARRIVAL_COLUMNS`: the client ``delta_norm``,
``staleness_weight`` and ``mixing`` that FedBuff and FedAsync put in ``Reply.info``,
Picky SGD's distance ``moved`` = ‖x_k − x_v‖ and MindFlayer's ``timed_out``) are
added after the fixed ones the first time a reply carries the key, with NaN for the
rows before it and for later replies without it. A run whose policy never reports
them has exactly the fixed columns, so its CSV is unchanged, and a core run pays one
dict lookup per optional key per arrival.

Cancellations (a reply's ``cancel``, applied by the engine) are recorded per event in
a third table, :attr:`Recorder.cancellations`: one row per cancelled job with the
index of the arrival row whose reply cancelled it (``arrival``), its time, the job
and its worker. A run that cancels also gets the arrival column ``cancelled`` (jobs
cancelled at that arrival, 0 where none); a run that never cancels has neither, so
its files are unchanged.
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
OPTIONAL_ARRIVAL_COLUMNS = (
    "delta_norm",
    "staleness_weight",
    "mixing",
    "moved",
    "timed_out",
)

#: Columns of the cancellation table (one row per cancelled job).
CANCEL_COLUMNS = ("arrival", "time", "job", "worker")

#: The arrival column that counts the jobs cancelled at each arrival.
CANCELLED = "cancelled"


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
    cancellations: dict[str, list[Any]] = field(
        default_factory=lambda: {c: [] for c in CANCEL_COLUMNS}
    )

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
        cancelled_at = self.cancellations["arrival"]
        if cancelled_at:
            per_row = [0] * len(self._rows)
            for i in reversed(cancelled_at):  # row indices never decrease
                if i < start:
                    break
                if i - start < len(per_row):
                    per_row[i - start] += 1
            cols.setdefault(CANCELLED, [0] * start).extend(per_row)
        self._rows.clear()

    def record_cancel(self, time: float, job: int, worker: int) -> None:
        """Record that ``job`` of ``worker`` was cancelled at ``time`` by the reply
        to the arrival recorded next (call before :meth:`record_arrival`)."""
        if self.keep_arrivals:
            c = self.cancellations
            c["arrival"].append(len(self._columns["time"]) + len(self._rows))
            c["time"].append(time)
            c["job"].append(job)
            c["worker"].append(worker)

    def cancellation_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Return the cancellation table as numpy arrays."""
        return {
            name: np.asarray(col, dtype=np.float64 if name == "time" else np.int64)
            for name, col in self.cancellations.items()
        }

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
        ints = {"job", "worker", "version", "delay", CANCELLED}
        bools = {"applied", "discarded", "skipped"}
        out: dict[str, npt.NDArray[Any]] = {}
        for name, col in self.arrivals.items():
            dtype = np.int64 if name in ints else bool if name in bools else np.float64
            out[name] = np.asarray(col, dtype=dtype)
        return out
