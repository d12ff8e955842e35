"""The text of ``report.md`` for a run directory of the tuning protocol.

Every time, count and speedup comes from the ``eval`` runs only: each method's
pick (selected on the tuning seeds, :mod:`clipasync.reports.protocol_tables`) rerun
on fresh evaluation seeds. Per (sweep point, method) the report gives the seeds,
the share that reached the target (first and robust hit) and the median of each
score with its distribution-free interval; the speedup of the reference method over
each baseline is a ratio of medians with a bootstrap interval
(:mod:`clipasync.reports.scores`). A censored value prints as "≥ x" (a speedup
over a censored reference as "≤ x"). Then the selection record, the budget check,
the robustness of each method to its stepsize on the coarse grid, and the theory
beside the measured updates to target (:mod:`clipasync.reports.scaling`).
Erickson & Johansson (2026, arXiv 2606.13287, Sec. 6) report speedups in time to
target; these tables are that measurement with fresh seeds and intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipasync.diagnostics.intervals import Bounded, Interval, ratio_bounds
from clipasync.experiments.analysis import EVAL, SCORES, Analysis
from clipasync.reports.markdown import (
    failure_lines,
    figure_lines,
    header_lines,
    paper_lines,
    tail_lines,
)
from clipasync.reports.protocol_tables import (
    budget_check,
    robustness_table,
    selection_table,
)
from clipasync.reports.scores import CellStats, Key, speedup_table, stats_table
from clipasync.reports.text import change, fmt_bounded, fmt_interval

Speedups = Mapping[tuple[tuple[Any, ...], str, str], Interval]


@dataclass
class ProtocolInputs:
    """Everything the protocol's report shows beside the evaluation analysis.

    Attributes:
        stages: Stage → its runs (``tune``, ``refine``, ``eval``).
        stats: Evaluation medians with intervals per (sweep point, method).
        speedups: Ratio of medians with its interval per (point, baseline, score).
        tuned: Analysis of the ``tune`` runs (``None``: none).
        selection: Entries of ``selection.json`` (``None``: absent).
        budgets: Coarse grid points per (sweep point, method), from the tune runs.
        confidence: Level of every interval.
    """

    stages: dict[str, list[dict[str, Any]]]
    stats: dict[Key, CellStats]
    speedups: Speedups
    tuned: Analysis | None
    selection: list[dict[str, Any]] | None
    budgets: dict[tuple[tuple[Any, ...], str], int]
    confidence: float


def _seeds_text(seeds: Sequence[int]) -> str:
    s = sorted(int(x) for x in seeds)
    if len(s) > 3 and s == list(range(s[0], s[0] + len(s))):
        return f"{s[0]}–{s[-1]} ({len(s)})"
    return f"{s} ({len(s)})"


def _median(st: CellStats | None, score: str) -> Bounded | None:
    iv = st.intervals.get(score) if st is not None else None
    return iv.estimate if iv is not None else None


def _growth(b0: Bounded, b1: Bounded) -> str:
    r = ratio_bounds(b1, b0)
    if r.exact and r.lo > 0:
        return change(r.lo)
    if r.lo >= 1:
        return f"grew {fmt_bounded(r, suffix='×')}"
    return f"changed by a factor {fmt_bounded(r, suffix='×')}"


def _verdict(iv: Interval) -> str:
    if iv.lower.lo > 1:
        return "faster"
    if iv.upper.hi < 1:
        return "slower"
    return "not resolved (the interval contains 1)"


def protocol_findings(a: Analysis, p: ProtocolInputs) -> list[str]:
    """Plain sentences from the evaluation medians (whichever way they came out)."""
    lines: list[str] = []
    pct = f"{100 * p.confidence:g} %"
    if len(a.points) >= 2:
        first, last = a.points[0], a.points[-1]
        for score in ("time", "updates"):
            parts = []
            for m in a.methods:
                b0 = _median(p.stats.get((first, m)), score)
                b1 = _median(p.stats.get((last, m)), score)
                if b0 is None or b1 is None:
                    continue
                parts.append(
                    f"{m}'s {_growth(b0, b1)} ({fmt_bounded(b0)} → {fmt_bounded(b1)})"
                )
            if parts:
                lines.append(
                    f"Median {SCORES[score]} from {a.point_label(first)} to "
                    f"{a.point_label(last)}: " + "; ".join(parts) + "."
                )
    if a.reference is not None and p.speedups:
        last = a.points[-1]
        parts = [
            f"{m} {fmt_interval(p.speedups[(last, m, 'time')], suffix='×')} "
            f"({_verdict(p.speedups[(last, m, 'time')])})"
            for m in a.methods
            if (last, m, "time") in p.speedups
        ]
        if parts:
            lines.append(
                f"At {a.point_label(last)}, speedup of {a.reference} in time to "
                f"target (ratio of medians, {pct} bootstrap interval): "
                + ", ".join(parts)
                + "."
            )
    partial = [st for st in p.stats.values() if st.reached < st.seeds]
    if partial:
        lines.append(
            f"{len(partial)} of {len(p.stats)} evaluated configurations have seeds "
            "that never reached the target; the medians and speedups they decide "
            "are bounds (≥ / ≤)."
        )
    return lines


def _setup_lines(a: Analysis, p: ProtocolInputs) -> list[str]:
    proto = a.config.get("protocol") or {}
    counts = ", ".join(f"{s} {len(r)}" for s, r in p.stages.items())
    seeds = (
        f"tuning seeds: {_seeds_text(proto.get('tuning_seeds', []))}; evaluation "
        f"seeds: {_seeds_text(proto.get('eval_seeds', []))}"
    )
    out = header_lines(
        a, f"runs: {sum(len(r) for r in p.stages.values())} ({counts})", seeds
    )
    refine = proto.get("refine")
    out[-1:-1] = [
        f"- protocol: each method's configuration is the smallest median "
        f"{proto.get('select_by', 'time')} to target over the tuning seeds "
        + (
            f"after one refinement pass (×/÷ {refine.get('factor', 2**0.5):.3g} "
            "around each coarse best)"
            if isinstance(refine, dict)
            else "on the coarse grid (no refinement)"
        )
        + f"; equal budget: {bool(proto.get('equal_budget', True))}; intervals at "
        f"{100 * p.confidence:g} %",
    ]
    out += [
        "Every time, count and speedup below is measured on the evaluation seeds "
        "only; the tuning seeds appear only in the selection and robustness tables.",
        "",
    ]
    return out


def render_protocol(
    a: Analysis,
    p: ProtocolInputs,
    figs: dict[str, tuple[Path, str]],
    diagnostics: dict[str, Any] | None = None,
) -> str:
    """Return the text of ``report.md`` (``a``: the analysis of the eval runs)."""
    pct = f"{100 * p.confidence:g} %"
    out = _setup_lines(a, p)
    out += ["## What was measured", ""]
    out += [f"- {line}" for line in protocol_findings(a, p)] or ["- (nothing yet)"]
    out.append("")
    out += figure_lines(figs, ["headline", "scaling"])

    out += [
        "## Evaluation on fresh seeds",
        "",
        f"Per (sweep point, method): the selected configuration, its evaluation "
        f"seeds, the share that reached the target (first hit / robust hit), and "
        f"the median of each score with its {pct} distribution-free interval "
        "(order statistics; ≥ x: the value falls on seeds that never got there, "
        "which stopped at x).",
        "",
        stats_table(a, p.stats, p.confidence),
        "",
    ]
    if p.speedups:
        out += [
            f"## Speedup of {a.reference} over each baseline",
            "",
            f"Median of the baseline ÷ median of {a.reference} (> 1: {a.reference} "
            f"is faster), with the {pct} percentile bootstrap interval over seeds; "
            f"≥ / ≤: the baseline's / {a.reference}'s median is censored.",
            "",
            speedup_table(a, p.speedups),
            "",
        ]
    measured = {
        (pt, m): iv.estimate.value
        for (pt, m, score), iv in p.speedups.items()
        if score == "time"
    }
    out += paper_lines(a, "ratio of evaluation medians", measured)

    out += ["## How the configurations were selected", ""]
    if p.selection:
        out += [selection_table(a, p.selection), ""]
    else:
        out += ["(no selection.json in this run directory)", ""]
    out += [budget_check(a, p.budgets, p.selection), ""]
    if p.tuned is not None and p.tuned.has_target:
        out += [
            "## Robustness to the stepsize (coarse grid, tuning seeds)",
            "",
            "Tuning-seed median time to target of every coarse grid point "
            '("diverged": every seed diverged), and the largest stepsize that '
            "reached the target on every tuning seed without diverging.",
            "",
            robustness_table(p.tuned),
            "",
        ]
    out += tail_lines(diagnostics or {}, a)
    out += figure_lines(figs, ["curves", "delays", "norms", "clipped"])
    out += failure_lines(a, p.stages.get(EVAL, []), "Evaluation runs")
    return "\n".join(out)
