"""The vectorised batched loop: K asynchronous-SGD configurations as one K × d
matrix, one arrival updating every row at once.

:func:`run_columns` is :func:`clipasync.sim.batched.run_batched` for grids whose
server step has a vectorised form, a :class:`~clipasync.policies.columns.ColumnUpdate`:
the :class:`~clipasync.policies.columns.ColumnStep` of asynchronous and normalised
SGD and Ringmaster (a fixed clip level, stepsize, delay rule and delay threshold per
configuration), Rennala's
:class:`~clipasync.policies.rennala_columns.RennalaColumns`, or several methods of
one event family side by side
(:class:`~clipasync.policies.families.ColumnUnion`). Per arrival it pays one
batched gradient, one vectorised update and a few array appends, whatever K,
instead of K policy calls; the
per-configuration work left is the evaluations, on their own cadence. The job
assignment is common, so one policy stream (seeded as every configuration's own)
draws it. Records, stops and answers are those of :func:`run_batched`: each
configuration's event records equal its one-configuration run's, its iterate up to
the rounding of ‖g‖ and of the batched gradient products.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.engine import Evaluate, StopRule, WorkerPool
from clipasync.errors import ConfigError, SimulationExhausted
from clipasync.policies.columns import ColumnUpdate
from clipasync.recorder import Recorder
from clipasync.sim.batched import BatchedResult, BatchedTask, block_of, payload_of
from clipasync.sim.stops import ColumnStops
from clipasync.types import Vector

_I64 = npt.NDArray[np.int64]


class _Row(ColumnStops):
    """Configuration j: row j of the shared iterate, version and count arrays."""

    def __init__(self, index: int, shared: _Shared, *args: Any) -> None:
        super().__init__(index, *args)
        self.shared = shared

    def params(self) -> Vector:
        row: Vector = self.shared.xs[self.index]  # a view: a stopped row stays put
        return row

    def version(self) -> int:
        return int(self.shared.versions[self.index])

    def arrivals(self) -> int:
        return int(self.shared.arrivals[self.index])

    def final_counts(self) -> dict[str, int]:
        j, sh = self.index, self.shared
        return {
            "arrivals": int(sh.arrivals[j]),
            "applied": int(sh.applied[j]),
            "discarded": int(sh.discarded[j]),
            "skipped": int(sh.skipped[j]),
            "cancelled": 0,
        }


class _Shared:
    """The K rows' iterates, versions and counters."""

    def __init__(self, x0: Vector, k: int) -> None:
        self.xs: Vector = np.tile(np.asarray(x0), (k, 1))
        self.versions: _I64 = np.zeros(k, dtype=np.int64)
        self.arrivals: _I64 = np.zeros(k, dtype=np.int64)
        self.applied: _I64 = np.zeros(k, dtype=np.int64)
        self.discarded: _I64 = np.zeros(k, dtype=np.int64)
        self.skipped: _I64 = np.zeros(k, dtype=np.int64)


class SharedEvaluations:
    """Evaluations of the rows due at one time, in one batched call.

    Rows evaluated at the same arrival share one ``evaluate_many`` call
    (:func:`clipasync.problems.many.evaluate_rows`); :meth:`for_row` is row j's
    metrics function, which returns the shared result for row j's current iterate
    during such a round, and evaluates alone otherwise (the final evaluation).

    Args:
        evaluate: One iterate's metrics.
        evaluate_many: Every row's metrics.
    """

    def __init__(
        self,
        evaluate: Evaluate,
        evaluate_many: Callable[[Vector], list[dict[str, float]]],
    ) -> None:
        self._one, self._many = evaluate, evaluate_many
        self._cache: dict[int, dict[str, float]] = {}

    def for_row(self, j: int) -> Evaluate:
        def evaluate(x: Vector) -> dict[str, float]:
            cached = self._cache.get(j)
            return dict(cached) if cached is not None else self._one(x)

        return evaluate

    def fill(self, rows: list[int], xs: Vector) -> None:
        """Evaluate ``rows`` of ``xs`` at once, for the round that follows."""
        if len(rows) > 1:
            self._cache = dict(zip(rows, self._many(xs[rows]), strict=True))

    def clear(self) -> None:
        self._cache = {}


def run_columns(
    step: ColumnUpdate,
    pool: WorkerPool,
    task: BatchedTask,
    x0: Vector,
    *,
    stops: Sequence[StopRule],
    rng: np.random.Generator,
    evaluates: Sequence[Evaluate | None],
    eval_every: Sequence[float | None],
    recorders: Sequence[Recorder] | None = None,
    on_leave: Callable[[int], None] | None = None,
    shared: SharedEvaluations | None = None,
) -> BatchedResult:
    """Run the K configurations of ``step`` over one pool (see module docstring).

    Arguments as :func:`~clipasync.sim.batched.run_batched`, but one policy stream
    ``rng`` and the vectorised server ``step`` instead of K policies; ``shared``:
    the evaluations whose ``for_row(j)`` are in ``evaluates``, filled before
    every round of evaluations.
    """
    k = step.num_columns
    if not k or not (len(stops) == len(evaluates) == len(eval_every) == k):
        raise ConfigError(f"run_columns needs K >= 1 equal-length lists, got K={k}")
    recs = list(recorders) if recorders is not None else [Recorder() for _ in range(k)]
    n = pool.num_workers
    sh = _Shared(x0, k)
    rows = [
        _Row(j, sh, stops[j], evaluates[j], eval_every[j], recs[j]) for j in range(k)
    ]
    max_updates = np.asarray([r.max_updates for r in rows], dtype=np.float64)
    max_arrivals = np.asarray([r.max_arrivals for r in rows], dtype=np.float64)
    results: list[Any] = [None] * k
    alive = np.ones(k, dtype=bool)
    log: list[tuple[Any, ...]] = []

    running = [k]  # rows alive, counted: cheaper than alive.any() per arrival

    def leave(r: _Row) -> None:
        running[0] -= int(alive[r.index])  # a row leaves once
        alive[r.index] = False
        task.alive[r.index] = False
        results[r.index] = r.result()
        if on_leave is not None:
            on_leave(r.index)

    every_row = np.arange(k, dtype=np.intp)

    def dispatch(workers: Sequence[int]) -> None:
        # sh.xs and sh.versions are replaced, never written in place, so a block
        # can hold them as they are; the task computes the rows still alive.
        block = block_of(sh.xs, every_row, sh.versions)
        for w in workers:
            pool.submit(w, block, 0)

    def next_check() -> float:
        return min(
            (min(r.next_eval, r.max_time) for r in rows if alive[r.index]),
            default=math.inf,
        )

    def fill(t: float) -> None:
        if shared is not None:
            due = [
                r.index
                for r in rows
                if alive[r.index]
                and r.evaluate is not None
                and r.next_eval <= min(t, r.max_time)
            ]
            shared.fill(due, sh.xs)

    dispatch(range(n))
    if shared is not None:
        shared.fill([r.index for r in rows if r.evaluate is not None], sh.xs)
    for r in rows:
        r.start_evals()
    if shared is not None:
        shared.clear()
    for r in rows:
        if r.reason is not None:
            leave(r)

    def next_slack() -> float:
        """Arrivals before any alive row can reach its update or arrival budget."""
        if not running[0]:
            return math.inf
        left = np.minimum(max_updates - sh.applied, max_arrivals - sh.arrivals)
        return float(left[alive].min())

    check = next_check()
    slack = next_slack()
    last_t = 0.0
    while running[0]:
        try:
            arrival = pool.next_arrival()
        except SimulationExhausted:
            for r in rows:
                if alive[r.index]:
                    r.reason, r.now = "exhausted", last_t
                    leave(r)
            break
        t = arrival.time
        if t >= check:
            fill(t)
            for r in rows:
                if alive[r.index] and not r.before(t):
                    leave(r)
            if shared is not None:
                shared.clear()
            check = next_check()
            if not running[0]:
                break
        last_t = t
        cols, gs, submitted = payload_of(arrival.payload)
        live = alive[cols]
        if np.count_nonzero(live) != live.shape[0]:
            cols, gs, submitted = cols[live], gs[live], submitted[live]
        full = cols.shape[0] == k  # every row alive: whole arrays, no gathers
        before = sh.versions if full else sh.versions[cols]
        delays = before - submitted
        xs = sh.xs if full else sh.xs[cols]
        new, applied, discarded, skipped, info = step.update(xs, gs, cols, delays, n)
        if full:
            sh.xs, sh.versions = new, before + applied
            sh.arrivals += 1
            sh.applied += applied
        else:
            sh.xs, sh.versions = sh.xs.copy(), sh.versions.copy()
            sh.xs[cols], sh.versions[cols] = new, before + applied
            sh.arrivals[cols] += 1
            sh.applied[cols] += applied
        # count_nonzero: a third of ``any``'s cost on a short mask.
        if np.count_nonzero(discarded):
            sh.discarded[cols] += discarded
        if np.count_nonzero(skipped):
            sh.skipped[cols] += skipped
        event = (t, arrival.job, arrival.worker, arrival.compute_time)
        log.append((*event, cols, before, delays, applied, discarded, skipped, info))
        dispatch((step.next_worker(arrival.worker, n, rng),))
        slack -= 1  # no count of an alive row grows by more than 1 per arrival
        if slack <= 0:
            done = (sh.applied[cols] >= max_updates[cols]) | (
                sh.arrivals[cols] >= max_arrivals[cols]
            )
            for j in cols[done].tolist():
                r = rows[j]
                over = sh.applied[j] >= max_updates[j]
                r.reason, r.now = ("max_updates" if over else "max_arrivals"), t
                leave(r)
            if done.any():
                check = next_check()
            slack = next_slack()
    _record(rows, log)
    return BatchedResult(results, ())


_FIELDS = ("version", "delay", "applied", "discarded", "skipped")
_INFO = ("pre_clip_norm", "clipped", "stepsize")


def _record(rows: list[_Row], log: list[tuple[Any, ...]]) -> None:
    """Write every configuration's arrival rows from the shared event log (one
    stable sort by configuration keeps each one's rows in event order)."""
    if not log:
        return
    sizes = np.asarray([len(e[4]) for e in log])
    event = np.repeat(np.arange(len(log)), sizes)
    col = np.concatenate([e[4] for e in log])
    per_row = {
        name: np.concatenate([e[5 + i] for e in log]) for i, name in enumerate(_FIELDS)
    }
    for name in _INFO:
        per_row[name] = np.concatenate([e[10][name] for e in log])
    shared = {
        name: np.asarray([e[i] for e in log])
        for i, name in enumerate(("time", "job", "worker", "compute_time"))
    }
    order = np.argsort(col, kind="stable")
    bounds = np.searchsorted(col[order], np.arange(len(rows) + 1))
    for r in rows:
        if not r.rec.keep_arrivals:
            continue
        take = order[bounds[r.index] : bounds[r.index + 1]]
        ev = event[take]
        out: dict[str, list[Any]] = {name: shared[name][ev].tolist() for name in shared}
        out.update({name: per_row[name][take].tolist() for name in per_row})
        r.rec.extend_arrivals(out)
