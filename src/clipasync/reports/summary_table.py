"""The tables and sentences of a report: ``summary.csv`` rows, the comparison
with the paper's reported speedups (``paper_comparison.csv``), and the findings.

For every (sweep point, method) the best grid point is the one with the smallest mean
time to target over seeds (:func:`clipasync.experiments.analysis.analyse`). The
speedup of the reference method (clipped ASGD) over a baseline at a sweep point is
baseline's best mean ÷ reference's best mean (> 1: the reference is faster), the
quantity Erickson & Johansson (2026, arXiv 2606.13287, Sec. 6) report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from clipasync.diagnostics.intervals import Bounded, ratio_bounds, sample_quantile
from clipasync.experiments.analysis import Analysis, Cell, score_sample, speedups
from clipasync.reports.scores import interval_columns, stats_of
from clipasync.reports.text import as_float, change, fmt_number


def mean_bound(a: Analysis, cell: Cell) -> Bounded:
    """A cell's mean score: a lower bound ("≥") when a seed never reached the
    target (it counts as the time cap)."""
    if a.has_target and cell.reached < len(cell.runs):
        return Bounded(cell.mean, math.inf)
    return Bounded(cell.mean, cell.mean)


def speedup_bounds(a: Analysis) -> dict[tuple[tuple[Any, ...], str], Bounded]:
    """:func:`~clipasync.experiments.analysis.speedups` as bounds: "≥" when the
    baseline's mean is a lower bound, "≤" when the reference's is."""
    out: dict[tuple[tuple[Any, ...], str], Bounded] = {}
    for (p, m), value in speedups(a).items():
        ref = a.best[(p, str(a.reference))]
        b = ratio_bounds(mean_bound(a, a.best[(p, m)]), mean_bound(a, ref))
        out[(p, m)] = b if not b.exact else Bounded(value, value)
    return out


def summary_rows(
    a: Analysis,
    stage: str | None = None,
    flag_best: bool = True,
    confidence: float = 0.9,
) -> list[dict[str, Any]]:
    """One row per (sweep point, method, grid point), best ones flagged.

    ``*_censored`` columns flag values that are lower bounds (seeds that never
    reached the target); the ``time_``, ``robust_``, ``updates_`` and
    ``gradients_`` columns hold each score's median and its interval at
    ``confidence`` (:func:`clipasync.reports.scores.interval_columns`). ``stage``
    adds a column naming the protocol stage; ``flag_best=False`` flags no row.
    """
    rows = []
    hyper_keys: list[str] = []
    for c in a.cells:
        hyper_keys.extend(k for k in c.hyper if k not in hyper_keys)
    for c in sorted(
        a.cells, key=lambda c: (a.points.index(c.point), a.methods.index(c.method))
    ):
        s = np.asarray(c.scores, dtype=float)
        row: dict[str, Any] = dict(zip(a.sweep_keys, c.point, strict=True))
        if stage is not None:
            row["stage"] = stage
        row["method"] = c.method
        row["policy"] = c.runs[0].get("policy", "")
        row.update({k: c.hyper.get(k) for k in hyper_keys})
        row.update(
            {
                "seeds": len(c.runs),
                "reached": c.reached,
                "diverged": c.diverged,
                "score": a.score_name.replace(" ", "_"),
                "mean": c.mean,
                "std": c.std,
                "median": float(np.median(s)),
                "min": float(s.min()),
                "max": float(s.max()),
                "mean_final_loss": float(
                    np.mean(
                        [
                            (r.get("final") or {}).get("loss", math.nan) or math.nan
                            for r in c.runs
                        ]
                    )
                ),
                "mean_delay": float(
                    np.nanmean([as_float(r.get("mean_delay")) for r in c.runs])
                ),
                "frac_clipped": float(
                    np.nanmean([as_float(r.get("frac_clipped")) for r in c.runs])
                )
                if any(r.get("frac_clipped") is not None for r in c.runs)
                else math.nan,
                "best": flag_best and a.best[(c.point, c.method)] is c,
            }
        )
        if a.has_target:
            row.update(_censored_columns(c))
            row.update(interval_columns(stats_of(c, confidence)))
        # Availability and federated counters, only for runs that have them.
        for key in ("lost_jobs", "mean_concurrency", "mean_delta_norm"):
            if any(key in r for r in c.runs):
                row[key] = float(np.nanmean([as_float(r.get(key)) for r in c.runs]))
        rows.append(row)
    return rows


def _censored_columns(c: Cell) -> dict[str, bool]:
    """Which of the cell's mean, median, min and max are lower bounds."""
    values, censored = score_sample(c.runs, "time")
    median = sample_quantile(values, censored) if values.size else None
    return {
        "mean_censored": bool(censored.any()),
        "median_censored": median is not None and not median.exact,
        "min_censored": bool(censored.size) and bool(censored.all()),
        "max_censored": bool(censored.any()),
    }


def paper_comparison(
    a: Analysis, measured: Mapping[tuple[tuple[Any, ...], str], float] | None = None
) -> list[dict[str, Any]]:
    """Rows comparing measured speedups with ``config['paper_reference']``.

    ``measured`` replaces the ratio of best means (the tuning protocol's report
    passes its ratios of evaluation medians).

    ``paper_reference`` maps a sweep-point label as the report prints it (``D=4``;
    ``-`` without a sweep) to ``{baseline: reported speedup}``. One row per
    (label, baseline): ``sweep``, ``baseline``, ``paper``, ``measured`` (NaN when
    that point or method was not run), ``censored`` (the reference or the baseline
    has seeds that never reached the target, so the measured ratio is uncertain).
    """
    ref_table = a.config.get("paper_reference") or {}
    sp = speedups(a) if measured is None else measured
    by_label = {a.point_label(p): p for p in a.points}
    rows: list[dict[str, Any]] = []
    for label, entries in ref_table.items():
        p = by_label.get(str(label))
        for m, paper in (entries or {}).items():
            value = sp.get((p, m), math.nan) if p is not None else math.nan
            names = [m] if a.reference is None else [m, a.reference]
            cells = [a.best.get((p, x)) for x in names] if p is not None else []
            censored = any(c is not None and c.reached < len(c.runs) for c in cells)
            rows.append(
                {
                    "sweep": str(label),
                    "baseline": m,
                    "paper": float(paper),
                    "measured": value,
                    "censored": censored,
                }
            )
    return rows


def findings(a: Analysis) -> list[str]:
    """Plain sentences stating what was measured (whichever way it came out)."""
    lines: list[str] = []
    if len(a.points) >= 2:
        first, last = a.points[0], a.points[-1]
        lo, hi = a.point_label(first), a.point_label(last)
        growth = {}
        for m in a.methods:
            b0, b1 = a.best.get((first, m)), a.best.get((last, m))
            if b0 and b1 and b0.mean > 0:
                growth[m] = (b0, b1, b1.mean / b0.mean)
        if a.reference in growth:
            r0, r1, rg = growth[a.reference]
            others = [
                f"{m}'s {change(g)}"
                for m, (_, _, g) in growth.items()
                if m != a.reference
            ]
            lines.append(
                f"{a.reference}'s best {a.score_name} "
                f"{change(rg)} from {lo} to {hi} "
                f"({fmt_number(r0.mean)} → {fmt_number(r1.mean)})"
                + (f", while {', '.join(others)}." if others else ".")
            )
        else:
            for m, (_, _, g) in growth.items():
                lines.append(
                    f"{m}'s best {a.score_name} changed {g:.2f}× from {lo} to {hi}."
                )
    sp = speedups(a)
    if a.reference is not None and sp:
        last = a.points[-1]
        parts = []
        for m in a.methods:
            if (last, m) in sp:
                s = sp[(last, m)]
                parts.append(f"{m} {s:.2f}×" + (" (slower)" if s < 1 else ""))
        lines.append(
            f"At {a.point_label(last)}, speedup of {a.reference} "
            f"(baseline's best {a.score_name} ÷ {a.reference}'s): {', '.join(parts)}."
        )
        ranks = {}
        for p in a.points:
            order = sorted(
                (c for (q, _), c in a.best.items() if q == p), key=lambda c: c.mean
            )
            if order:
                ranks[p] = order[0].method
        winners = ", ".join(f"{a.point_label(p)}: {m}" for p, m in ranks.items())
        lines.append(f"Fastest method at each sweep point — {winners}.")
    if a.has_target:
        partial = [c for c in a.best.values() if c.reached < len(c.runs)]
        if partial:
            lines.append(
                f"{len(partial)} best configurations include seeds that never reached "
                "the target within the time cap; their means count those seeds as the "
                "cap and are lower bounds."
            )
    return lines
