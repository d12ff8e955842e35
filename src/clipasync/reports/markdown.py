"""The text of ``report.md``: setup, findings, best configurations, speedups, the
paper comparison, the noise tail index, figures and failing runs.

:func:`render_markdown` writes the report of a legacy run directory (no tuning
protocol: selected and scored on the same seeds, which its banner says); the pieces
shared with the protocol's report (:mod:`clipasync.reports.protocol_report`) are
the header, figure, paper-comparison, tail-index and failure sections."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipasync.experiments.analysis import Analysis, fmt_value, short_key
from clipasync.policies.registry import label as hyper_label
from clipasync.reports.summary_table import (
    findings,
    mean_bound,
    paper_comparison,
    speedup_bounds,
)
from clipasync.reports.text import (
    as_float,
    direction,
    fmt_bounded,
    fmt_number,
    markdown_table,
)


def tail_lines(diag: dict[str, Any], a: Analysis) -> list[str]:
    entries = diag.get("tail_index") or []
    if not entries:
        return []
    out = [
        "## How heavy-tailed is the gradient noise?",
        "",
        "Sub-Weibull tail parameter θ̂ of the noise norm ‖g − ∇f‖ (Vladimirova et al. "
        "2020: slope of the log of the k largest of n norms against log log(n/i); "
        "θ = 1/2 sub-Gaussian, 1 sub-exponential, larger is heavier; the paper "
        "reports θ̂ = 2.71 for ResNet-18 on CIFAR-10). ∇f is the leave-one-out mean "
        "of the other sampled gradients.",
        "",
    ]
    rows = []
    for e in entries:
        point = e.get("point") or {}
        label = (
            ", ".join(f"{short_key(k)}={fmt_value(v)}" for k, v in point.items())
            if point
            else "-"
        )
        theta = e.get("theta")
        rows.append(
            [
                str(e.get("at", "")),
                label if e.get("at") == "final" else "(all)",
                str(e.get("method", "-")),
                fmt_number(float(theta), 3) if theta is not None else "—",
                fmt_number(float(e["r2"]), 3) if e.get("r2") is not None else "—",
                f"{e.get('k', '—')}/{e.get('n', '—')}",
                fmt_number(float(e["max_norm_over_median"]), 3)
                if e.get("max_norm_over_median") is not None
                else "—",
                str(e.get("error", "")),
            ]
        )
    out += [
        markdown_table(
            ["at", "sweep", "method", "θ̂", "R²", "k/n", "max/median norm", "note"],
            rows,
        ),
        "",
    ]
    thetas = [float(e["theta"]) for e in entries if e.get("theta") is not None]
    if thetas:
        lo, hi = min(thetas), max(thetas)
        kind = (
            "lighter than sub-exponential"
            if hi < 1
            else "heavier than sub-exponential"
            if lo > 1
            else "around sub-exponential"
        )
        out += [f"Measured θ̂ between {lo:.2f} and {hi:.2f}: {kind}.", ""]
    return out


#: The banner of a report whose runs were selected and scored on the same seeds.
LEGACY_BANNER = (
    "> **Selected and scored on the same seeds.** This experiment has no "
    "`protocol:` block, so each method's best grid point was chosen on the seeds "
    "below and scored on those same seeds: the scores flatter the selection (more "
    "so for a method with more grid points). Add `protocol: {{tuning_seeds: [...], "
    "eval_seeds: {{first: 1000, count: 20}}}}` to select on tuning seeds and score "
    "on fresh ones. Seeds here: {seeds}."
)


def header_lines(a: Analysis, runs_line: str, seeds_line: str) -> list[str]:
    """Title, description and the setup list (problem, timing, sweep, seeds, stop,
    score, reference method)."""
    cfg = a.config
    stop = cfg.get("stop", {})
    target = stop.get("target")
    out: list[str] = [f"# {cfg.get('name', 'experiment')}", ""]
    if cfg.get("description"):
        out += [str(cfg["description"]).strip(), ""]
    problem = ", ".join(f"{k}={v}" for k, v in cfg.get("problem", {}).items())
    timing = ", ".join(f"{k}={v}" for k, v in cfg.get("timing", {}).items())
    sweep = cfg.get("sweep") or {}
    confirm = (target or {}).get("confirm") or 1
    out += [
        f"- problem: {problem}",
        f"- timing: {timing}",
        f"- sweep: {', '.join(f'{k} ∈ {v}' for k, v in sweep.items()) or 'none'}",
        f"- {seeds_line}; {runs_line}",
        "- stop: "
        + (
            f"target {target['metric']} "
            f"{direction(target['metric'], target.get('direction'))} "
            f"{target['value']}; "
            if target
            else ""
        )
        + ", ".join(f"{k}={v}" for k, v in stop.items() if k != "target"),
        f"- score: {a.score_name}"
        + (
            " (simulated time of the first evaluation at which the target held; "
            f"evaluated every {cfg.get('eval_every')} time units; a run that never "
            "reached it is censored at the time it stopped: means count it as the "
            'time cap, medians and speedups it decides print as "≥ x")'
            + (
                f"; robust hit: the first of {confirm} consecutive evaluations at "
                "the target"
                if confirm > 1
                else "; robust hit = first hit (confirm: 1)"
            )
            if a.has_target
            else ""
        ),
        f"- reference method for speedups: {a.reference or 'none'}",
        "",
    ]
    return out


def figure_lines(figs: dict[str, tuple[Path, str]], keys: Sequence[str]) -> list[str]:
    """The markdown of the figures named in ``keys`` that were made."""
    out: list[str] = []
    for key in keys:
        if key in figs:
            path, caption = figs[key]
            out += [f"![{key}]({path.name})", "", f"*{caption}*", ""]
    return out


def failure_lines(a: Analysis, runs: Sequence[dict[str, Any]], scope: str) -> list[str]:
    """Best configurations with failing seeds, and counts per method over ``runs``
    (``scope`` names them)."""
    out = ["## Runs that diverged or never reached the target", ""]
    bad_best = [
        (p, m, c)
        for (p, m), c in a.best.items()
        if a.has_target and c.reached < len(c.runs)
    ]
    if bad_best:
        out.append("Configurations with failing seeds:")
        out.append("")
        for p, m, c in bad_best:
            failed = [r for r in c.runs if not r.get("reached")]
            text = hyper_label(c.policy, c.hyper)
            out.append(
                f"- {a.point_label(p)}, {m} ({text}): never reached "
                f"{len(failed)}/{len(c.runs)} — "
                + ", ".join(f"seed {r['seed']} ({r['stop_reason']})" for r in failed)
            )
        out.append("")
    counts = []
    for m in a.methods:
        ms = [r for r in runs if r["method"] == m]
        div = sum(r.get("stop_reason") == "diverged" for r in ms)
        never = sum(not r.get("reached") for r in ms) if a.has_target else 0
        counts.append([m, str(len(ms)), str(div), str(never) if a.has_target else "—"])
    out += [
        f"{scope}:",
        "",
        markdown_table(["method", "runs", "diverged", "never reached"], counts),
        "",
        "Files: `summary.csv` (one row per sweep point × method × grid point; "
        "`*_censored` columns flag lower bounds), `config.resolved.yaml`, "
        "`runs/<run_id>/` (summary.json, evals.csv, arrivals.csv.gz: one row per "
        "arrival, gzip-compressed CSV).",
        "",
    ]
    return out


def paper_lines(
    a: Analysis,
    measured_name: str,
    measured: Mapping[tuple[tuple[Any, ...], str], float] | None = None,
) -> list[str]:
    """The comparison with the paper's reported speedups (empty without one)."""
    comparison = paper_comparison(a, measured)
    if not comparison:
        return []
    out = [
        "## Measured vs the paper's reported speedups",
        "",
        f"Speedup of {a.reference} over each baseline ({measured_name}), here and "
        "as reported by Erickson & Johansson (2026) on their task (see the config's "
        "comments).",
        "",
    ]
    crows = []
    for r in comparison:
        value = r["measured"]
        verdict = (
            "not run"
            if not math.isfinite(value)
            else "clipping slower"
            if value < 1
            else "smaller gain than paper"
            if value < r["paper"]
            else "as large or larger"
        )
        crows.append(
            [
                r["sweep"],
                r["baseline"],
                fmt_number(r["paper"], 3) + "×",
                (fmt_number(value, 3) + "×") if math.isfinite(value) else "—",
                verdict + (" (censored seeds)" if r["censored"] else ""),
            ]
        )
    out += [
        markdown_table(["sweep", "baseline", "paper", "measured", "verdict"], crows),
        "",
    ]
    wins = [r for r in comparison if math.isfinite(r["measured"])]
    if wins:
        n_win = sum(r["measured"] > 1 for r in wins)
        n_tie = sum(r["measured"] == 1 for r in wins)
        out += [
            f"{a.reference} was faster in {n_win} of {len(wins)} comparisons"
            + (f" (tied in {n_tie})" if n_tie else "")
            + "; the paper reports it faster in all of them.",
            "",
        ]
    return out


def render_markdown(
    a: Analysis,
    figs: dict[str, tuple[Path, str]],
    runs: Sequence[dict[str, Any]],
    diagnostics: dict[str, Any] | None = None,
) -> str:
    """Return the text of a legacy ``report.md`` (no ``protocol``: selected and
    scored on the same seeds, said in a banner); ``diagnostics``:
    ``diagnostics.json``."""
    seeds = a.config.get("seeds", [])
    out = header_lines(a, f"runs: {len(runs)}", f"seeds: {seeds}")
    out[2:2] = [LEGACY_BANNER.format(seeds=seeds), ""]
    out += ["## What was measured", ""]
    out += [f"- {line}" for line in findings(a)] or ["- (one sweep point only)"]
    out.append("")
    out += figure_lines(figs, ["headline", "scaling"])

    out += ["## Best configuration per method", ""]
    rows = []
    for p in a.points:
        for m in a.methods:
            c = a.best.get((p, m))
            if c is None:
                continue
            n = len(c.runs)
            reached = f"{c.reached}/{n}" + (
                "" if c.reached == n else f" (never reached {n - c.reached}/{n})"
            )
            delay = np.nanmean([as_float(r.get("mean_delay")) for r in c.runs])
            rows.append(
                [
                    a.point_label(p),
                    m,
                    f"{fmt_bounded(mean_bound(a, c))} ± {fmt_number(c.std, 2)}",
                    reached if a.has_target else "—",
                    hyper_label(c.policy, c.hyper),
                    f"{delay:.1f}",
                ]
            )
    out += [
        markdown_table(
            [
                "sweep",
                "method",
                f"{a.score_name} (mean ± std)",
                "reached",
                "best hyperparameters",
                "mean delay",
            ],
            rows,
        ),
        "",
    ]

    sp = speedup_bounds(a)
    if sp:
        others = [m for m in a.methods if m != a.reference]
        out += [
            f"## Speedup of {a.reference} over each baseline",
            "",
            f"Baseline's best {a.score_name} ÷ {a.reference}'s best (> 1: "
            f"{a.reference} is faster; ≥ / ≤: a mean includes seeds that never "
            "reached the target, counted as the time cap).",
            "",
        ]
        srows = [
            [a.point_label(p)]
            + [
                fmt_bounded(sp[(p, m)], suffix="×") if (p, m) in sp else "—"
                for m in others
            ]
            for p in a.points
        ]
        out += [markdown_table(["sweep", *others], srows), ""]

    out += paper_lines(
        a, f"baseline's best {a.score_name} ÷ {a.reference}'s, means over seeds"
    )
    out += tail_lines(diagnostics or {}, a)
    out += figure_lines(figs, ["curves", "delays", "norms", "clipped"])
    out += failure_lines(a, runs, "Over the whole grid (bad stepsizes included)")
    return "\n".join(out)
