"""K configurations in one event loop: a grid at the cost of a few runs.

The configurations of one method that share the problem, the timing model and the
seed see one sequence of events whenever the server's decisions (which workers get
a job, which jobs are cancelled) depend on times and counts only: the event heap
of :class:`~clipasync.sim.pool.SimulatedPool` is keyed by finish times and start
order, the compute times come from the timing stream, and each job's minibatch from
its worker's oracle stream. :func:`run_batched` runs them side by side: one pool,
one heap, and per job one batched oracle call for every configuration still
running (:mod:`clipasync.problems.many`; *common random numbers*: every
configuration's gradient comes from the same minibatch and noise draw). Each
configuration keeps its own policy state (its transform: clip level, stepsize,
delay rule; its policy stream, seeded alike), its own stop rule, target and
divergence check, evaluations and :class:`~clipasync.recorder.Recorder`; a
configuration that stops leaves the oracle calls.

Same answers: configuration j sees the arrivals, versions and random draws of its
one-configuration :func:`clipasync.engine.run`, so its event records are equal and
its iterates differ only by the rounding of the batched products (a few ulps per
gradient entry, amplified at most like any perturbation of the run, which the tests
bound by 1e-9 relative over a few hundred updates). A stop or target decided by a
metric within that rounding of its threshold may fall one evaluation apart.

Safety net: after every arrival the replies' ``dispatch`` and ``cancel`` are
compared; configurations that disagree with the majority (a policy whose decisions
depend on its iterate, or a skipped non-finite gradient that changes a schedule)
leave the loop and are reported in :attr:`BatchedResult.ejected`, for the caller to
run on their own. Which methods batch at all is the registry's
``MethodEntry.schedule``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.engine import Evaluate, RunResult, StopRule, WorkerPool
from clipasync.errors import ConfigError, SimulationExhausted
from clipasync.policies.base import ServerPolicy
from clipasync.problems.many import Columns, ManyTask, Rows
from clipasync.recorder import Recorder
from clipasync.sim.stops import ColumnStops
from clipasync.types import Arrival, Vector


@dataclass(frozen=True, slots=True)
class _Block:
    """The model of a submitted job: the rows of the configurations it serves."""

    xs: Rows
    cols: Columns
    versions: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Payload:
    """A job's result: ``gs[i]`` belongs to configuration ``cols[i]``, whose model
    had version ``versions[i]``."""

    cols: Columns
    gs: Rows
    versions: npt.NDArray[np.int64]


def block_of(xs: Rows, cols: Columns, versions: npt.NDArray[np.int64]) -> Any:
    """The stand-in for x of a job submitted for configurations ``cols`` (their rows
    ``xs``, at versions ``versions``); only :class:`BatchedTask` reads it."""
    return _Block(xs, cols, versions)


def payload_of(payload: Any) -> tuple[Columns, Rows, npt.NDArray[np.int64]]:
    """The configurations, payload rows and model versions of a batched job."""
    p: _Payload = payload
    return p.cols, p.gs, p.versions


class BatchedTask:
    """The pool's task of a batched run: computes a job for the rows of its block
    whose configurations still run (a finished one stops costing compute).

    Args:
        task: The batched job (:mod:`clipasync.problems.many`).
        num_columns: K.
    """

    def __init__(self, task: ManyTask, num_columns: int) -> None:
        self._task = task
        #: Configurations still running (the drivers clear their flags).
        self.alive = np.ones(num_columns, dtype=bool)

    def __call__(self, worker: int, x: Any, rng: np.random.Generator) -> Any:
        block: _Block = x
        live = self.alive[block.cols]
        if live.all():
            xs, cols, versions = block.xs, block.cols, block.versions
        else:
            # No live row: compute one anyway, so the worker's stream advances
            # exactly as in a one-configuration run.
            keep = np.flatnonzero(live) if live.any() else np.zeros(1, np.intp)
            xs, cols = block.xs[keep], block.cols[keep]
            versions = block.versions[keep]
        return _Payload(cols, self._task(worker, xs, cols, rng), versions)


@dataclass
class BatchedResult:
    """Outcome of :func:`run_batched`.

    Attributes:
        results: Configuration j's :class:`~clipasync.engine.RunResult`, or
            ``None`` when it was ejected.
        ejected: Configurations whose decisions left the shared event sequence; run
            them on their own.
    """

    results: list[RunResult | None]
    ejected: tuple[int, ...]


class _Column(ColumnStops):
    """A configuration with its own policy state (the per-configuration path)."""

    def __init__(
        self,
        index: int,
        policy: ServerPolicy[Any],
        state: Any,
        stop: StopRule,
        evaluate: Evaluate | None,
        eval_every: float | None,
        recorder: Recorder,
    ) -> None:
        super().__init__(index, stop, evaluate, eval_every, recorder)
        self.policy, self.state = policy, state
        self.on_arrival, self.version_of = policy.on_arrival, policy.version
        self.record = recorder.record_arrival

    def params(self) -> Vector:
        return self.policy.params(self.state)

    def version(self) -> int:
        return self.policy.version(self.state)


def _majority(keys: list[Any]) -> Any:
    """The most common key (ties: the one seen first)."""
    first = keys[0]
    if all(k == first for k in keys):
        return first
    counts = Counter(keys)
    best = max(counts.values())
    return next(k for k in keys if counts[k] == best)


def run_batched(
    policies: Sequence[ServerPolicy[Any]],
    pool: WorkerPool,
    task: BatchedTask,
    x0: Vector,
    *,
    stops: Sequence[StopRule],
    rngs: Sequence[np.random.Generator],
    evaluates: Sequence[Evaluate | None],
    eval_every: Sequence[float | None],
    recorders: Sequence[Recorder] | None = None,
    on_leave: Callable[[int], None] | None = None,
) -> BatchedResult:
    """Run K configurations over one pool (see module docstring).

    Args:
        policies: Configuration j's server rule.
        pool: The simulated workers, built with ``task`` as their task.
        task: The batched job; its ``alive`` flags are kept here.
        x0: Common initial iterate.
        stops, rngs, evaluates, eval_every, recorders: Configuration j's arguments
            of :func:`clipasync.engine.run` (``rngs[j]``: its policy stream, each
            seeded as its own run's).
        on_leave: Called with j when configuration j stops (not when ejected),
            while the pool is where its own run would have left it (its counters
            are then those of that run).

    Returns:
        The :class:`BatchedResult`.
    """
    k = len(policies)
    if not k or not (len(stops) == len(rngs) == len(evaluates) == len(eval_every) == k):
        raise ConfigError(f"run_batched needs K >= 1 equal-length lists, got K={k}")
    recs = list(recorders) if recorders is not None else [Recorder() for _ in range(k)]
    n = pool.num_workers
    cols = [
        _Column(
            j, p, p.init(x0, n, rngs[j]), stops[j], evaluates[j], eval_every[j], recs[j]
        )
        for j, p in enumerate(policies)
    ]
    results: list[RunResult | None] = [None] * k
    ejected: list[int] = []
    inflight: dict[int, list[int]] = {}
    alive = task.alive

    def leave(c: _Column, eject: bool) -> None:
        alive[c.index] = False
        if eject:
            ejected.append(c.index)
        else:
            results[c.index] = c.result()
            if on_leave is not None:
                on_leave(c.index)

    def agree(active: list[_Column], keys: list[Any]) -> tuple[list[_Column], Any]:
        key = _majority(keys)
        if all(kk == key for kk in keys):
            return active, key
        kept = []
        for c, kk in zip(active, keys, strict=True):
            if kk == key:
                kept.append(c)
            else:
                leave(c, eject=True)
        return kept, key

    def dispatch(workers: tuple[int, ...], members: list[_Column]) -> None:
        block = _Block(
            np.stack([c.params() for c in members]),
            np.asarray([c.index for c in members], dtype=np.intp),
            np.asarray([c.version() for c in members], dtype=np.int64),
        )
        for w in workers:
            # The block stands in for x: the pool only hands it to the task.
            inflight.setdefault(w, []).append(pool.submit(w, block, 0))  # type: ignore[arg-type]

    active, start = agree(cols, [c.policy.start(c.state) for c in cols])
    dispatch(start, active)
    for c in active:
        c.start_evals()
    active = [c for c in active if c.reason is None]
    for c in cols:
        if c.reason is not None:
            leave(c, False)
    while active:
        try:
            arrival = pool.next_arrival()
        except SimulationExhausted:
            for c in active:
                c.reason = "exhausted"
                leave(c, eject=False)
            break
        t = arrival.time
        going = []
        for c in active:
            if c.before(t):
                going.append(c)
            else:
                leave(c, False)
        if not going:
            break
        jobs = inflight.get(arrival.worker)
        if jobs:
            jobs.remove(arrival.job)
        payload: _Payload = arrival.payload  # type: ignore[assignment]
        row = {c: i for i, c in enumerate(payload.cols.tolist())}
        gs, versions = payload.gs, payload.versions
        keys = []
        replies = []
        for c in going:
            j = c.index
            mine = Arrival(
                arrival.job,
                arrival.worker,
                int(versions[row[j]]),
                gs[row[j]],
                t,
                arrival.compute_time,
            )
            version = c.version_of(c.state)
            c.state, reply = c.on_arrival(c.state, mine)
            counts = c.counts
            counts["arrivals"] += 1
            counts["applied"] += reply.applied
            counts["discarded"] += reply.discarded
            counts["skipped"] += reply.skipped
            replies.append((c, mine, version, reply))
            keys.append((reply.dispatch, reply.cancel))
        active, (to_dispatch, to_cancel) = agree(going, keys)
        cancels = [(job, w) for w in to_cancel for job in inflight.pop(w, [])]
        cancelled = len(cancels)
        for job, _ in cancels:
            pool.cancel(job)
        kept = {id(c) for c in active}
        for c, mine, version, reply in replies:
            if id(c) in kept:
                # As the engine: an arrival's cancellations go before its row.
                for job, w in cancels:
                    c.rec.record_cancel(t, job, w)
            c.record(mine, version, reply)
        if to_dispatch and active:
            dispatch(to_dispatch, active)
        still = []
        for c in active:
            counts = c.counts
            counts["cancelled"] += cancelled
            if counts["applied"] >= c.max_updates:
                c.reason = "max_updates"
            elif counts["arrivals"] >= c.max_arrivals:
                c.reason = "max_arrivals"
            if c.reason is None:
                still.append(c)
            else:
                leave(c, eject=False)
        active = still
    return BatchedResult(results, tuple(sorted(ejected)))
