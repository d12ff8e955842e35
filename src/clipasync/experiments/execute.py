"""One run: build it from its :class:`~clipasync.experiments.grid.RunSpec`, run it on
the simulator, and summarise it (:class:`RunOutcome`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipasync.engine import RunResult, WorkerPool, run
from clipasync.experiments.build import (
    build_evaluate,
    build_policy,
    build_pool,
    build_problem,
    build_stop,
    build_task,
    build_timing,
)
from clipasync.experiments.grid import RunSpec
from clipasync.experiments.tensorboard import LiveScalars
from clipasync.recorder import Recorder
from clipasync.seeding import Stream, stream
from clipasync.sim.availability import OpenSystemPool, UnreliablePool


@dataclass
class RunOutcome:
    """A finished run: its summary and its records.

    Attributes:
        summary: JSON-ready summary (see :func:`execute`).
        arrivals: Arrival columns (``Recorder.arrival_arrays``).
        evals: Evaluation rows.
        params: The final iterate.
        cancellations: One row per cancelled job
            (``Recorder.cancellation_arrays``; empty columns if none).
    """

    summary: dict[str, Any]
    arrivals: dict[str, np.ndarray[Any, Any]] = field(repr=False)
    evals: list[dict[str, float]] = field(repr=False)
    params: np.ndarray[Any, Any] | None = field(default=None, repr=False)
    cancellations: dict[str, np.ndarray[Any, Any]] = field(
        default_factory=dict, repr=False
    )
    #: The iterate of the last evaluation (the one ``summary["final"]`` reports);
    #: it differs from ``params`` when arrivals land exactly at ``max_time``.
    evaluated: np.ndarray[Any, Any] | None = field(default=None, repr=False)


def _nanmean(a: np.ndarray[Any, Any]) -> float:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


def execute(spec: RunSpec, tensorboard: Path | None = None) -> RunOutcome:
    """Run one spec on the simulator and summarise it.

    The summary holds the spec's fields plus ``stop_reason``, ``reached``,
    ``time_to_target`` (= ``first_hit``), ``robust_hit`` (the first evaluation of
    the first streak of ``confirm`` evaluations at the target), the applied updates
    and gradients (arrivals) at either hit (``updates_to_target``,
    ``gradients_to_target``, ``updates_to_robust``, ``gradients_to_robust``;
    ``None`` when not reached), ``censor_time`` (where a run that never confirmed
    the target stopped: its score is "≥ censor_time"; else ``None``),
    ``sim_time``, ``version``, ``counts``, ``initial`` and
    ``final`` metrics, ``wall_time`` (seconds), ``updates_per_time``,
    ``mean_delay``/``largest_delay`` (observed, over applied updates; not Ringmaster's
    threshold ``max_delay``), ``frac_clipped`` (over
    applied updates that went through a clip) and ``mean_pre_clip_norm``.

    With ``tensorboard`` (a folder) the run's scalars are written there live at
    every evaluation (:class:`~clipasync.experiments.tensorboard.LiveScalars`).
    """
    problem = build_problem(spec.problem)
    timing = build_timing(spec.timing)
    policy = build_policy(spec.policy, spec.params)
    task = build_task(spec.policy, spec.params, policy, problem)
    pool = build_pool(
        timing,
        task,
        spec.seed,
        spec.availability,
        spec.timing.get("tie_break", "start"),
    )
    recorder = Recorder(keep_arrivals=True)
    evaluate = build_evaluate(problem)
    last: list[Any] = [None]
    evaluate_and_keep = keeping_last(last, 0, evaluate)
    live = None if tensorboard is None else LiveScalars(tensorboard)
    t0 = time.perf_counter()
    try:
        result = run(
            policy,
            pool,
            problem.initial_point(),
            stop=build_stop(spec.stop),
            rng=stream(spec.seed, Stream.POLICY),
            evaluate=evaluate_and_keep,
            eval_every=spec.eval_every,
            recorder=recorder,
            on_progress=None if live is None else lambda t: live.update(recorder),
        )
    finally:
        pool.close()
        if live is not None:
            live.close()
    wall = time.perf_counter() - t0
    outcome = summarise(spec, result, recorder, wall)
    outcome.evaluated = last[0]
    outcome.summary.update(pool_stats(pool))
    outcome.summary.update(federated_stats(outcome.arrivals))
    return outcome


def summarise(
    spec: RunSpec, result: RunResult, recorder: Recorder, wall: float
) -> RunOutcome:
    """Turn a finished run into its :class:`RunOutcome` (any pool: sim or Ray)."""
    arr = recorder.arrival_arrays()
    applied = arr["applied"].astype(bool)
    delays = arr["delay"][applied]
    clipped = arr["clipped"][applied]
    first = _eval_at(recorder.evals, result.time_to_target)
    robust = _eval_at(recorder.evals, result.robust_hit)
    summary: dict[str, Any] = {
        **spec.record(),
        "stop_reason": result.stop_reason,
        "reached": result.time_to_target is not None,
        "time_to_target": result.time_to_target,
        "first_hit": result.time_to_target,
        "robust_hit": result.robust_hit,
        "updates_to_target": _count(first, "version"),
        "gradients_to_target": _count(first, "arrivals"),
        "updates_to_robust": _count(robust, "version"),
        "gradients_to_robust": _count(robust, "arrivals"),
        "censor_time": result.time if result.robust_hit is None else None,
        "confirm": int((spec.stop.get("target") or {}).get("confirm") or 1),
        "sim_time": result.time,
        "version": result.version,
        "counts": result.counts,
        "initial": recorder.evals[0] if recorder.evals else {},
        "final": recorder.evals[-1] if recorder.evals else {},
        "wall_time": wall,
        "updates_per_time": result.version / result.time if result.time > 0 else 0.0,
        "mean_delay": float(delays.mean()) if delays.size else math.nan,
        "largest_delay": int(delays.max()) if delays.size else 0,
        "frac_clipped": _nanmean(clipped),
        "mean_pre_clip_norm": _nanmean(arr["pre_clip_norm"]),
    }
    return RunOutcome(
        summary, arr, recorder.evals, result.params, recorder.cancellation_arrays()
    )


def _eval_at(evals: list[dict[str, float]], t: float | None) -> dict[str, float] | None:
    """The evaluation row at time ``t`` (the hit times are evaluation times)."""
    if t is None:
        return None
    return next((e for e in evals if e["time"] == t), None)


def _count(row: dict[str, float] | None, key: str) -> int | None:
    value = None if row is None else row.get(key)
    return None if value is None else int(value)


def pool_stats(pool: WorkerPool) -> dict[str, Any]:
    """Availability counters of a pool (empty for a plain simulated pool).

    ``lost_jobs``, ``lost_compute_time`` and ``lost_by_worker`` (dropout), and for
    an open system ``started_jobs`` and ``mean_concurrency`` (time average of the
    jobs in flight, λ·E[τ] by Little's law).
    """
    out: dict[str, Any] = {}
    if isinstance(pool, UnreliablePool | OpenSystemPool):
        out["lost_jobs"] = int(pool.lost_jobs)
        out["lost_compute_time"] = float(pool.lost_compute_time)
        out["lost_by_worker"] = [int(v) for v in pool.lost_by_worker]
    if isinstance(pool, OpenSystemPool):
        out["started_jobs"] = int(pool.started_jobs)
        out["mean_concurrency"] = float(pool.mean_concurrency())
    return out


def federated_stats(arr: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    """Client-side summaries of a federated run's arrival columns (empty otherwise).

    ``mean_delta_norm`` (norm of the client deltas as received, i.e. after client
    clipping) and ``mean_staleness_weight``.
    """
    out: dict[str, Any] = {}
    if "delta_norm" in arr:
        out["mean_delta_norm"] = _nanmean(arr["delta_norm"])
    if "staleness_weight" in arr:
        out["mean_staleness_weight"] = _nanmean(arr["staleness_weight"])
    return out


def keeping_last(
    last: list[Any], j: int, evaluate: Callable[[Any], dict[str, float]]
) -> Callable[[Any], dict[str, float]]:
    """``evaluate`` that also keeps a copy of the iterate it saw in ``last[j]``."""

    def evaluate_and_keep(x: Any) -> dict[str, float]:
        last[j] = np.array(x, copy=True)
        return evaluate(x)

    return evaluate_and_keep
