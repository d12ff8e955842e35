"""Group an experiment's run summaries into cells and pick the best grid points.

A cell is every seed of one (sweep point, method, grid point). The best grid point
of a (sweep point, method) has the smallest mean score over seeds: the time to
target (a seed that never reached it counts as the time cap, so such a mean is a
lower bound), or without a target the final loss. The speedup of the reference
method over a baseline is the baseline's best mean ÷ the reference's best mean.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipasync.errors import ConfigError
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
