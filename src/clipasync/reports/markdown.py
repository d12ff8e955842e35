"""The text of ``report.md``: setup, findings, best configurations, speedups, the
paper comparison, the noise tail index, figures and failing runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipasync.experiments.analysis import Analysis, fmt_value, short_key, speedups
from clipasync.policies.registry import label as hyper_label
from clipasync.reports.summary_table import findings, paper_comparison
from clipasync.reports.text import (
    as_float,
    direction,
    fmt_number,
    markdown_table,
)


def _tail_lines(diag: dict[str, Any], a: Analysis) -> list[str]:
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


def render_markdown(
    a: Analysis,
    figs: dict[str, tuple[Path, str]],
    runs: Sequence[dict[str, Any]],
    diagnostics: dict[str, Any] | None = None,
) -> str:
    """Return the text of ``report.md`` (``diagnostics``: ``diagnostics.json``)."""
    cfg = a.config
    stop = cfg.get("stop", {})
    target = stop.get("target")
    seeds = cfg.get("seeds", [])
    out: list[str] = [f"# {cfg.get('name', 'experiment')}", ""]
    if cfg.get("description"):
        out += [str(cfg["description"]).strip(), ""]
    problem = ", ".join(f"{k}={v}" for k, v in cfg.get("problem", {}).items())
    timing = ", ".join(f"{k}={v}" for k, v in cfg.get("timing", {}).items())
    sweep = cfg.get("sweep") or {}
    out += [
        f"- problem: {problem}",
        f"- timing: {timing}",
        f"- sweep: {', '.join(f'{k} ∈ {v}' for k, v in sweep.items()) or 'none'}",
        f"- seeds: {seeds}; runs: {len(runs)}",
        "- stop: "
        + (
            f"target {target['metric']} {direction(target['metric'])} "
            f"{target['value']}; "
            if target
            else ""
        )
        + ", ".join(f"{k}={v}" for k, v in stop.items() if k != "target"),
        f"- score: {a.score_name}"
        + (
            " (simulated time of the first evaluation at which the target held; "
            f"evaluated every {cfg.get('eval_every')} time units; a run that never "
            "reached it counts as the time cap)"
            if a.has_target
            else ""
        ),
        f"- reference method for speedups: {a.reference or 'none'}",
        "",
        "## What was measured",
        "",
    ]
    out += [f"- {line}" for line in findings(a)] or ["- (one sweep point only)"]
    out.append("")
    if "headline" in figs:
        path, caption = figs["headline"]
        out += [f"![headline]({path.name})", "", f"*{caption}*", ""]

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
                    f"{fmt_number(c.mean)} ± {fmt_number(c.std, 2)}",
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

    sp = speedups(a)
    if sp:
        others = [m for m in a.methods if m != a.reference]
        out += [
            f"## Speedup of {a.reference} over each baseline",
            "",
            f"Baseline's best {a.score_name} ÷ {a.reference}'s best (> 1: "
            f"{a.reference} is faster).",
            "",
        ]
        srows = [
            [a.point_label(p)]
            + [fmt_number(sp[(p, m)], 3) + "×" if (p, m) in sp else "—" for m in others]
            for p in a.points
        ]
        out += [markdown_table(["sweep", *others], srows), ""]

    comparison = paper_comparison(a)
    if comparison:
        out += [
            "## Measured vs the paper's reported speedups",
            "",
            f"Speedup of {a.reference} over each baseline (baseline's best "
            f"{a.score_name} ÷ {a.reference}'s), here and as reported by Erickson & "
            "Johansson (2026) on their task (see the config's comments).",
            "",
        ]
        crows = []
        for r in comparison:
            measured = r["measured"]
            verdict = (
                "not run"
                if not math.isfinite(measured)
                else "clipping slower"
                if measured < 1
                else "smaller gain than paper"
                if measured < r["paper"]
                else "as large or larger"
            )
            crows.append(
                [
                    r["sweep"],
                    r["baseline"],
                    fmt_number(r["paper"], 3) + "×",
                    (fmt_number(measured, 3) + "×") if math.isfinite(measured) else "—",
                    verdict + (" (censored seeds)" if r["censored"] else ""),
                ]
            )
        out += [
            markdown_table(
                ["sweep", "baseline", "paper", "measured", "verdict"], crows
            ),
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

    out += _tail_lines(diagnostics or {}, a)

    for key in ("curves", "delays", "norms", "clipped"):
        if key in figs:
            path, caption = figs[key]
            out += [f"![{key}]({path.name})", "", f"*{caption}*", ""]

    out += ["## Runs that diverged or never reached the target", ""]
    bad_best = [
        (p, m, c)
        for (p, m), c in a.best.items()
        if a.has_target and c.reached < len(c.runs)
    ]
    if bad_best:
        out.append("Best configurations with failing seeds:")
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
        "Over the whole grid (bad stepsizes included):",
        "",
        markdown_table(["method", "runs", "diverged", "never reached"], counts),
        "",
        "Files: `summary.csv` (one row per sweep point × method × grid point), "
        "`config.resolved.yaml`, `runs/<run_id>/` (summary.json, evals.csv, "
        "arrivals.csv.gz: one row per arrival, gzip-compressed CSV).",
        "",
    ]
    return "\n".join(out)
