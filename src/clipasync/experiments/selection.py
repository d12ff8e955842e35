"""Pick each method's configuration on tuning seeds, and refine its grid once.

The tuning protocol (:class:`~clipasync.experiments.sections.ProtocolConfig`) scores
a grid point by the **median over tuning seeds** of the time, updates or gradients
to the robust hit (``select_by``); a run that never confirmed the target (or
diverged) is censored and counts as +∞. The pick minimises that median; among
equals, more seeds reaching the target, then the smaller stepsize, then grid order
(coarse points before refined ones). Only runs of the stages ``tune`` and
``refine`` on the tuning seeds are ever scored (:meth:`Candidate.from_runs`), so the
evaluation seeds cannot leak into the choice.

Refinement: around the coarse best, each refinable axis the coarse grid varies
(``stepsize`` — in effective-step grids ``effective_step`` — and ``max_norm``,
numeric or a noise quantile; never integer axes such as ``max_delay``) is tried at
best / f and best × f with the other axes at their best, for every method alike
(:func:`refine_points`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipasync.errors import HyperparameterError
from clipasync.experiments.analysis import REFINE, TUNE
from clipasync.experiments.methods import MethodConfig
from clipasync.experiments.relative import (
    CLIP_SCALE,
    EFFECTIVE_STEP,
    NOISE_QUANTILE,
    GridPoint,
)
from clipasync.policies.registry import MethodEntry

#: The summary key each ``select_by`` minimises (robust hits: a noisy dip below
#: the target does not count until ``confirm`` evaluations agree).
SCORE_KEYS = {
    "time": "robust_hit",
    "updates": "updates_to_robust",
    "gradients": "gradients_to_robust",
}
#: The stages whose runs selection may score.
TUNING_STAGES = (TUNE, REFINE)
#: The axes a refinement pass multiplies by 1/f and f (in field order).
REFINABLE = ("stepsize", "max_norm")


def run_score(summary: dict[str, Any], select_by: str) -> float:
    """Return a run's score for ``select_by`` (+∞ when censored)."""
    value = summary.get(SCORE_KEYS[select_by])
    if value is None or summary.get("stop_reason") == "diverged":
        return math.inf
    return float(value)


def median_score(scores: Sequence[float]) -> float:
    """Median of scores with +∞ for censored runs (+∞ for no scores)."""
    if not scores:
        return math.inf
    return float(np.median(np.asarray(scores, dtype=float)))


@dataclass
class Candidate:
    """One grid point of a (sweep point, method) with its tuning runs.

    Attributes:
        point: The grid point (parameters and relative coordinates).
        hyper: Its record, as in run summaries.
        stage: ``tune`` (coarse) or ``refine``.
        runs: Summaries of its runs on the tuning seeds.
        scores: Their scores (+∞: censored), in ``runs`` order.
    """

    point: GridPoint
    hyper: dict[str, Any]
    stage: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    @classmethod
    def from_runs(
        cls,
        point: GridPoint,
        hyper: dict[str, Any],
        stage: str,
        runs: Iterable[dict[str, Any]],
        select_by: str,
        tuning_seeds: Iterable[int],
    ) -> Candidate:
        """Return the candidate scored on ``runs`` of a tuning stage and a tuning
        seed only (any other run, an evaluation run above all, is ignored)."""
        seeds = set(tuning_seeds)
        kept = sorted(
            (
                r
                for r in runs
                if r.get("stage") in TUNING_STAGES and r.get("seed") in seeds
            ),
            key=lambda r: int(r["seed"]),
        )
        return cls(point, hyper, stage, kept, [run_score(r, select_by) for r in kept])

    @property
    def score(self) -> float:
        """Median tuning score (+∞ when censored)."""
        return median_score(self.scores)

    @property
    def reached(self) -> int:
        """Tuning seeds with a finite score (the robust hit reached)."""
        return sum(math.isfinite(s) for s in self.scores)

    def rank(self) -> tuple[float, int, float]:
        """Sort key: median score, then more seeds reached, then smaller stepsize."""
        step = self.hyper.get("stepsize")
        return (self.score, -self.reached, float(step) if step is not None else 0.0)

    def record(self) -> dict[str, Any]:
        """Plain data for ``selection.json`` (+∞ written as ``null``)."""

        def finite(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "hyper": dict(self.hyper),
            "stage": self.stage,
            "score": finite(self.score),
            "scores": [finite(s) for s in self.scores],
            "seeds": [int(r["seed"]) for r in self.runs],
            "reached": self.reached,
            "run_ids": [str(r["run_id"]) for r in self.runs],
        }


def select(candidates: Sequence[Candidate]) -> Candidate:
    """Return the best candidate (smallest :meth:`Candidate.rank`; the first of
    equals in the given order).

    Raises:
        ValueError: If there are no candidates.
    """
    if not candidates:
        raise ValueError("no candidates to select from")
    best = candidates[0]
    for c in candidates[1:]:
        if c.rank() < best.rank():
            best = c
    return best


def varied_axes(method: MethodConfig) -> tuple[str, ...]:
    """Return the refinable axes the method's coarse grid varies (two or more
    values): ``stepsize`` (or its effective step) and ``max_norm``."""
    values = method.axis_values()
    return tuple(a for a in REFINABLE if len(values.get(a) or ()) >= 2)


def refine_points(
    entry: MethodEntry[Any], best: GridPoint, factor: float, axes: Sequence[str]
) -> list[GridPoint]:
    """Return the refined grid around ``best``: for each axis of ``axes`` (in
    :data:`REFINABLE` order), the point with that axis at best / ``factor`` and
    at best × ``factor``, the others at their best.

    In an effective-step grid the step axis is ``effective_step`` (e; stepsize =
    e / c) and refining ``max_norm`` keeps e (stepsize = e / c'); a refined clip
    level of a quantile grid records ``clip_scale`` (c' = clip_scale × the
    quantile's norm). An axis at ``None`` (no clipping) is not refined, nor is a
    point the parameter class rejects.
    """
    params, extra = best.params, best.extra
    out: list[GridPoint] = []
    for axis in (a for a in REFINABLE if a in axes):
        for mult in ("down", "up"):

            def scaled(v: float, mult: str = mult) -> float:
                return v / factor if mult == "down" else v * factor

            new_extra = dict(extra)
            if axis == "stepsize":
                if EFFECTIVE_STEP in extra:
                    e = scaled(extra[EFFECTIVE_STEP])
                    new_extra[EFFECTIVE_STEP] = e
                    changes = {"stepsize": e / params.max_norm}
                else:
                    changes = {"stepsize": scaled(params.stepsize)}
            else:
                if params.max_norm is None or not math.isfinite(params.max_norm):
                    continue
                c = scaled(params.max_norm)
                changes = {"max_norm": c}
                if EFFECTIVE_STEP in extra:
                    changes["stepsize"] = extra[EFFECTIVE_STEP] / c
                if NOISE_QUANTILE in extra:
                    new_extra[CLIP_SCALE] = scaled(extra.get(CLIP_SCALE, 1.0))
            try:
                out.append(GridPoint(dataclasses.replace(params, **changes), new_extra))
            except HyperparameterError:
                continue
    return out


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return bool(a == b)


def same_params(entry: MethodEntry[Any], a: GridPoint, b: GridPoint) -> bool:
    """Whether two grid points run alike (parameters equal, floats to 1e-9)."""
    ha, hb = entry.to_hyper(a.params), entry.to_hyper(b.params)
    return ha.keys() == hb.keys() and all(_close(ha[k], hb[k]) for k in ha)
