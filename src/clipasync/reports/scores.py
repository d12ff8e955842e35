"""Medians over seeds with confidence intervals, and speedups as ratios of medians.

For each (sweep point, method) of a report (the evaluation runs of the tuning
protocol; the best grid point of a legacy report) and each score of
:data:`clipasync.experiments.analysis.SCORES` (time to target, robust hit, updates
and gradients to target): the median over seeds with its distribution-free
order-statistic interval, and the share of seeds that reached the target (first hit)
and confirmed it (robust hit). The speedup of the reference method over a baseline
is median(baseline) ÷ median(reference) with a percentile bootstrap interval over
seeds (:mod:`clipasync.diagnostics.intervals`). A run that never reached the target
is censored, so a median or speedup it decides prints as "≥ x" (or "≤ x").
Erickson & Johansson (2026, arXiv 2606.13287, Sec. 6) report the speedup of clipped
asynchronous SGD in time to a target; this module adds the uncertainty over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipasync.diagnostics.intervals import (
    DEFAULT_RESAMPLES,
    Interval,
    median_interval,
    ratio_of_medians_interval,
)
from clipasync.experiments.analysis import (
    SCORES,
    Analysis,
    Cell,
    robust_reached,
    score_sample,
)
from clipasync.policies.registry import label as hyper_label
from clipasync.reports.text import fmt_interval, markdown_table

#: Root seed of the bootstrap resamples (one stream per comparison, so a report
#: reads the same on every rebuild and one comparison does not shift another).
BOOTSTRAP_SEED = 20260613

Key = tuple[tuple[Any, ...], str]


@dataclass
class CellStats:
    """Medians with intervals of one (sweep point, method).

    Attributes:
        cell: The cell (the configuration and its runs, one per seed).
        seeds: Number of seeds.
        reached: Seeds that reached the target (first hit).
        robust: Seeds that confirmed it (robust hit).
        intervals: Score → median with its interval (``None``: no values).
    """

    cell: Cell
    seeds: int
    reached: int
    robust: int
    intervals: dict[str, Interval | None] = field(default_factory=dict)


def stats_of(cell: Cell, confidence: float) -> CellStats:
    """Return the medians with intervals of every score of a cell."""
    intervals: dict[str, Interval | None] = {}
    for score in SCORES:
        values, censored = score_sample(cell.runs, score)
        intervals[score] = (
            median_interval(values, censored, confidence) if values.size else None
        )
    return CellStats(
        cell=cell,
        seeds=len(cell.runs),
        reached=sum(bool(r.get("reached")) for r in cell.runs),
        robust=sum(robust_reached(r) for r in cell.runs),
        intervals=intervals,
    )


def cell_stats(a: Analysis, confidence: float) -> dict[Key, CellStats]:
    """Return :func:`stats_of` for the best cell of every (sweep point, method)."""
    return {k: stats_of(c, confidence) for k, c in a.best.items()}


def speedup_intervals(
    a: Analysis,
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[tuple[tuple[Any, ...], str, str], Interval]:
    """Return median(baseline) ÷ median(reference) with its bootstrap interval, per
    (sweep point, baseline, score), from the best cells' seeds."""
    out: dict[tuple[tuple[Any, ...], str, str], Interval] = {}
    if a.reference is None or not a.has_target:
        return out
    for i, p in enumerate(a.points):
        ref = a.best.get((p, a.reference))
        if ref is None:
            continue
        for j, m in enumerate(a.methods):
            other = a.best.get((p, m))
            if m == a.reference or other is None:
                continue
            for s, score in enumerate(SCORES):
                den, den_c = score_sample(ref.runs, score)
                num, num_c = score_sample(other.runs, score)
                if not (den.size and num.size):
                    continue
                rng = np.random.default_rng([BOOTSTRAP_SEED, i, j, s])
                out[(p, m, score)] = ratio_of_medians_interval(
                    num, num_c, den, den_c, rng, confidence, resamples
                )
    return out


def interval_columns(stats: CellStats) -> dict[str, Any]:
    """``summary.csv`` columns of a cell: per score, the median and its interval's
    ends (``<score>_median``, ``_lo``, ``_hi``), each with a ``_censored`` flag
    (True: the value is a lower bound, "≥ x"), and the seeds that confirmed."""
    row: dict[str, Any] = {"reached_robust": stats.robust}
    for score, iv in stats.intervals.items():
        if iv is None:
            continue
        for name, b in (("median", iv.estimate), ("lo", iv.lower), ("hi", iv.upper)):
            row[f"{score}_{name}"] = b.value
            row[f"{score}_{name}_censored"] = not b.exact
    return row


def _pct(confidence: float) -> str:
    return f"{100 * confidence:g} %"


def stats_table(a: Analysis, stats: dict[Key, CellStats], confidence: float) -> str:
    """Markdown table: per (sweep point, method), the seeds, the share that reached,
    and the median of every score with its interval."""
    header = [
        "sweep",
        "method",
        "configuration",
        "seeds",
        "reached (first / robust)",
    ] + [f"median {SCORES[s]} [{_pct(confidence)}]" for s in SCORES]
    rows = []
    for p in a.points:
        for m in a.methods:
            st = stats.get((p, m))
            if st is None:
                continue
            rows.append(
                [
                    a.point_label(p),
                    m,
                    hyper_label(st.cell.policy, st.cell.hyper),
                    str(st.seeds),
                    f"{st.reached}/{st.seeds} / {st.robust}/{st.seeds}",
                ]
                + [fmt_interval(st.intervals.get(s)) for s in SCORES]
            )
    return markdown_table(header, rows)


def speedup_table(
    a: Analysis, sp: Mapping[tuple[tuple[Any, ...], str, str], Interval]
) -> str:
    """Markdown table: one row per (sweep point, score), one column per baseline."""
    others = [m for m in a.methods if m != a.reference]
    rows = []
    for p in a.points:
        for score in SCORES:
            cells = [fmt_interval(sp.get((p, m, score)), suffix="×") for m in others]
            if all(c == "—" for c in cells):
                continue
            rows.append([a.point_label(p), SCORES[score], *cells])
    return markdown_table(["sweep", "score", *others], rows)


def median_value(stats: CellStats, score: str) -> float:
    """The median of a score (its lower bound when censored; NaN without values)."""
    iv = stats.intervals.get(score)
    return iv.estimate.value if iv is not None else math.nan
