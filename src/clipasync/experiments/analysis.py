"""Group an experiment's run summaries into cells and pick the best grid points.

A cell is every seed of one (sweep point, method, grid point). The best grid point
of a (sweep point, method) has the smallest mean score over seeds: the time to
target (a seed that never reached it counts as the time cap, so such a mean is a
lower bound), or without a target the final loss. The speedup of the reference
method over a baseline is the baseline's best mean ÷ the reference's best mean.

Runs of the tuning protocol carry a ``stage`` (:data:`TUNE`, :data:`REFINE`,
:data:`EVAL`; none: :data:`LEGACY`, selected and scored on the same seeds);
:func:`run_score` reads a run's time, robust hit, updates or gradients to the target
with its censoring (a lower bound for a run that never got there), the input of the
intervals of :mod:`clipasync.diagnostics.intervals`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipasync.errors import ConfigError
from clipasync.experiments.timing_schema import TimingConfig, timing_workers
from clipasync.policies.hyper import fmt_value as fmt_value


@dataclass
class Cell:
    """All seeds of one (sweep point, method, grid point).

    Attributes:
        point: Sweep values, in sweep-key order.
        method: Method name.
        hyper: The grid point.
        runs: Run summaries (one per seed).
        scores: Time to target (cap when not reached), or final loss without target.
    """

    point: tuple[Any, ...]
    method: str
    hyper: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    @property
    def policy(self) -> str:
        """The registered policy of the method (``""`` for a cell without runs)."""
        return str(self.runs[0].get("policy", "")) if self.runs else ""

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0

    @property
    def reached(self) -> int:
        return sum(bool(r.get("reached")) for r in self.runs)

    @property
    def diverged(self) -> int:
        return sum(r.get("stop_reason") == "diverged" for r in self.runs)


@dataclass
class Analysis:
    """What the report shows, computed once from the run summaries."""

    config: dict[str, Any]
    sweep_keys: list[str]
    points: list[tuple[Any, ...]]
    methods: list[str]
    cells: list[Cell]
    best: dict[tuple[tuple[Any, ...], str], Cell]
    reference: str | None
    has_target: bool
    cap: float | None

    @property
    def score_name(self) -> str:
        return "time to target" if self.has_target else "final loss"

    def x_values(self) -> list[float] | None:
        """Numeric sweep values when there is exactly one numeric sweep key."""
        if len(self.sweep_keys) != 1:
            return None
        vals = [p[0] for p in self.points]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            return [float(v) for v in vals]
        return None

    def point_label(self, point: tuple[Any, ...]) -> str:
        if not self.sweep_keys:
            return "-"
        return ", ".join(
            f"{short_key(k)}={fmt_value(v)}"
            for k, v in zip(self.sweep_keys, point, strict=True)
        )


def short_key(key: str) -> str:
    return "D" if key == "timing.slow_time" else key.split(".")[-1]


def analyse(runs: Sequence[dict[str, Any]], config: dict[str, Any]) -> Analysis:
    """Group runs into cells and pick the best grid point of each (point, method).

    Raises:
        ConfigError: If there are no runs.
    """
    if not runs:
        raise ConfigError("no finished runs to report on")
    stop = config.get("stop", {})
    target = stop.get("target")
    cap = stop.get("max_time")
    sweep_keys = list((config.get("sweep") or {}).keys())
    methods = [m for m in config.get("methods", {})]
    cells: dict[tuple[tuple[Any, ...], str, str], Cell] = {}
    points: list[tuple[Any, ...]] = []
    for r in runs:
        point = tuple(r["sweep"].get(k) for k in sweep_keys)
        if point not in points:
            points.append(point)
        if r["method"] not in methods:
            methods.append(r["method"])
        key = (point, r["method"], json.dumps(r["hyper"], sort_keys=True))
        cell = cells.setdefault(key, Cell(point, r["method"], r["hyper"]))
        cell.runs.append(r)
        if target:
            t = r.get("time_to_target")
            limit = cap if cap is not None else r.get("sim_time", math.inf)
            cell.scores.append(float(t) if t is not None else float(limit))
        else:
            loss = (r.get("final") or {}).get("loss")
            cell.scores.append(float(loss) if loss is not None else math.inf)
    best: dict[tuple[tuple[Any, ...], str], Cell] = {}
    for cell in cells.values():
        k = (cell.point, cell.method)
        cur = best.get(k)
        # Smallest mean; among equals, more seeds reaching, then the smaller stepsize.
        rank = (cell.mean, -cell.reached, cell.hyper.get("stepsize", 0.0))
        if cur is None or rank < (
            cur.mean,
            -cur.reached,
            cur.hyper.get("stepsize", 0.0),
        ):
            best[k] = cell
    reference = config.get("reference")
    if reference not in methods:
        reference = None
    return Analysis(
        config=config,
        sweep_keys=sweep_keys,
        points=points,
        methods=[m for m in methods if any(c.method == m for c in cells.values())],
        cells=list(cells.values()),
        best=best,
        reference=reference,
        has_target=bool(target),
        cap=float(cap) if cap is not None else None,
    )


def speedups(a: Analysis) -> dict[tuple[tuple[Any, ...], str], float]:
    """Baseline best mean ÷ reference best mean, per (point, baseline)."""
    out: dict[tuple[tuple[Any, ...], str], float] = {}
    if a.reference is None:
        return out
    for p in a.points:
        ref = a.best.get((p, a.reference))
        if ref is None:
            continue
        for m in a.methods:
            other = a.best.get((p, m))
            if m != a.reference and other is not None and ref.mean > 0:
                out[(p, m)] = other.mean / ref.mean
    return out


def representative(cell: Cell) -> dict[str, Any]:
    """The run of a cell shown in curve plots: its median-score seed."""
    order = np.argsort(cell.scores, kind="stable")
    return cell.runs[int(order[(len(order) - 1) // 2])]


# ---------------------------------------------------------------------------
# the tuning protocol's stages and scores (issue 11)

#: A run's ``stage`` in its summary: the coarse grid on tuning seeds, the refined
#: points on tuning seeds, the pick on evaluation seeds.
TUNE, REFINE, EVAL = "tune", "refine", "eval"
#: The stage of a summary without one: selected and scored on the same seeds.
LEGACY = "legacy"

#: Scores of a run to the target: key → how the report names it.
SCORES: dict[str, str] = {
    "time": "time to target",
    "robust": "robust hit",
    "updates": "updates to target",
    "gradients": "gradients to target",
}


def stage_of(run: dict[str, Any]) -> str:
    """Return a run's stage (``tune``, ``refine``, ``eval``), ``legacy`` without."""
    stage = run.get("stage")
    return str(stage) if stage is not None else LEGACY


def split_stages(runs: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Return the runs of each stage present, in their order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(stage_of(r), []).append(r)
    return out


def _budget(run: dict[str, Any], key: str) -> float | None:
    v = (run.get("stop") or {}).get(key)
    return float(v) if v is not None else None


def _counted(run: dict[str, Any], score: str) -> float:
    """Updates (``version``) or gradients (arrivals) a run had made when it stopped."""
    if score == "updates":
        return float(run.get("version") or 0)
    return float((run.get("counts") or {}).get("arrivals", 0))


def run_score(run: dict[str, Any], score: str) -> tuple[float, bool]:
    """Return ``(value, censored)`` of one run's score (a key of :data:`SCORES`).

    ``time`` is the first hit (``first_hit``, else ``time_to_target``); ``robust``
    the first evaluation of the first confirmed streak (``robust_hit``; a run
    without the key stopped at its first hit, so that); ``updates``/``gradients``
    the updates applied and gradients computed at the first hit
    (``updates_to_target``/``gradients_to_target``; a run without them that stopped
    at the target counts its totals). A run that never got there is censored: its
    value is a lower bound, the time (``censor_time``, else ``sim_time``) or count
    at which it stopped; a diverged run never gets there, so its bound is raised to
    the run's budget (``max_time``, ``max_updates``). A reached run whose count is
    unknown gives ``(nan, False)``.

    Raises:
        ConfigError: On an unknown score.
    """
    if score not in SCORES:
        raise ConfigError(f"unknown score {score!r}; choose one of {list(SCORES)}")
    first = run.get("first_hit", run.get("time_to_target"))
    if score in ("time", "robust"):
        v = run.get("robust_hit", first) if score == "robust" else first
        if v is not None:
            return float(v), False
        lb = run.get("censor_time")
        lb = run.get("sim_time") if lb is None else lb
        bound = float(lb) if lb is not None else -math.inf
        cap = _budget(run, "max_time")
        if run.get("stop_reason") == "diverged" and cap is not None:
            bound = max(bound, cap)
        return bound, True
    v = run.get(f"{score}_to_target")
    if v is not None:
        return float(v), False
    if first is not None:
        if f"{score}_to_target" not in run and run.get("stop_reason") == "target":
            return _counted(run, score), False
        return math.nan, False
    bound = _counted(run, score)
    cap = _budget(run, "max_updates" if score == "updates" else "max_arrivals")
    if run.get("stop_reason") == "diverged" and cap is not None:
        bound = max(bound, cap)
    return bound, True


def score_sample(
    runs: Sequence[dict[str, Any]], score: str
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.bool_]]]:
    """Return the values and censored flags of a score over runs (unknown values,
    see :func:`run_score`, left out)."""
    pairs = [run_score(r, score) for r in runs]
    kept = [(v, c) for v, c in pairs if c or not math.isnan(v)]
    values = np.array([v for v, _ in kept], dtype=np.float64)
    return values, np.array([c for _, c in kept], dtype=bool)


def robust_reached(run: dict[str, Any]) -> bool:
    """True when a run confirmed the target (``robust_hit``; legacy: ``reached``)."""
    if "robust_hit" in run:
        return run["robust_hit"] is not None
    return bool(run.get("reached"))


def largest_delay(runs: Sequence[dict[str, Any]]) -> int | None:
    """The largest observed delay τ_max over runs (``None`` if none recorded)."""
    delays = [
        int(r["largest_delay"]) for r in runs if r.get("largest_delay") is not None
    ]
    return max(delays) if delays else None


def concurrency(run: dict[str, Any]) -> int | None:
    """τ_C of a run: the number of workers of its timing model (``None`` when only
    known at run time, e.g. a replayed trace)."""
    timing = run.get("timing")
    if not isinstance(timing, dict):
        return None
    try:
        return timing_workers(TimingConfig.model_validate(timing))
    except ValueError:
        return None


def coarse_grid_sizes(
    runs: Sequence[dict[str, Any]], sweep_keys: Sequence[str]
) -> dict[tuple[tuple[Any, ...], str], int]:
    """Distinct grid points of each (sweep point, method) over runs: the coarse
    budget when given the ``tune`` runs (points in ``sweep_keys`` order)."""
    seen: dict[tuple[tuple[Any, ...], str], set[str]] = {}
    for r in runs:
        point = tuple((r.get("sweep") or {}).get(k) for k in sweep_keys)
        key = (point, str(r["method"]))
        seen.setdefault(key, set()).add(json.dumps(r.get("hyper"), sort_keys=True))
    return {k: len(v) for k, v in seen.items()}
