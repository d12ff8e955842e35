"""Turn a run directory into ``summary.csv``, ``report.md`` and PNG plots.

For every (sweep point, method) the best grid point is the one with the smallest mean
time to target over seeds; a run that never reached the target counts as the time cap
(so a mean that includes such runs is a lower bound, and the report says "never
reached k/n"). Without a target, the final value of the loss is ranked instead. The
speedup of the reference method (clipped ASGD) over a baseline at a sweep point is
baseline's best mean ÷ reference's best mean (> 1: the reference is faster).

With ``paper_reference`` in the config the report puts the paper's reported speedups
next to the measured ones (``paper_comparison.csv`` too); with a ``diagnostics.json``
(:mod:`clipasync.experiments.diagnose`) it states the measured tail index of the gradient noise.

Command line: ``clipasync report RUN_DIR`` rebuilds everything from ``runs/``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from clipasync.errors import ConfigError
from clipasync.engine import MINIMISED
from clipasync.experiments.analysis import (
    Analysis,
    Cell,
    fmt_value,
    short_key,
    analyse,
    representative,
    speedups,
)
from clipasync.experiments.runner import RUNS_DIR, arrivals_path, load_runs
from clipasync.io import read_columns, write_rows_csv_atomic, write_text_atomic

Array = npt.NDArray[np.float64]


def _direction(metric: str) -> str:
    return "≤" if metric in MINIMISED else "≥"


def _change(ratio: float) -> str:
    """'grew 1.29×' / 'shrank 1.02×' (the factor is always ≥ 1, so it reads right)."""
    if ratio >= 1:
        return f"grew {ratio:.2f}×"
    return f"shrank {1 / ratio:.2f}×"


def _fmt(v: float, digits: int = 3) -> str:
    if not math.isfinite(v):
        return "—"
    return f"{v:.{digits}g}"


# ---------------------------------------------------------------------------
# Tables.


def summary_rows(a: Analysis) -> list[dict[str, Any]]:
    """One row per (sweep point, method, grid point), best ones flagged."""
    rows = []
    hyper_keys: list[str] = []
    for c in a.cells:
        hyper_keys.extend(k for k in c.hyper if k not in hyper_keys)
    for c in sorted(
        a.cells, key=lambda c: (a.points.index(c.point), a.methods.index(c.method))
    ):
        s = np.asarray(c.scores, dtype=float)
        row: dict[str, Any] = dict(zip(a.sweep_keys, c.point, strict=True))
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
                    np.nanmean([_f(r.get("mean_delay")) for r in c.runs])
                ),
                "frac_clipped": float(
                    np.nanmean([_f(r.get("frac_clipped")) for r in c.runs])
                )
                if any(r.get("frac_clipped") is not None for r in c.runs)
                else math.nan,
                "best": a.best[(c.point, c.method)] is c,
            }
        )
        # Availability and federated counters, only for runs that have them.
        for key in ("lost_jobs", "mean_concurrency", "mean_delta_norm"):
            if any(key in r for r in c.runs):
                row[key] = float(np.nanmean([_f(r.get(key)) for r in c.runs]))
        rows.append(row)
    return rows


def _f(v: Any) -> float:
    return math.nan if v is None else float(v)


def _hyper_text(h: dict[str, Any]) -> str:
    # FedAsync has no stepsize; FedBuff's is the server stepsize η_g.
    parts = [f"γ={fmt_value(h['stepsize'])}"] if h.get("stepsize") is not None else []
    if h.get("mixing") is not None:
        parts.append(f"α={fmt_value(h['mixing'])}")
    if h.get("buffer_size") is not None:
        parts.append(f"K={h['buffer_size']}")
    if h.get("local_stepsize") is not None:
        parts.append(f"η_l={fmt_value(h['local_stepsize'])}")
        parts.append(f"Q={h.get('local_steps', 1)}")
    if h.get("client_max_norm") is not None:
        parts.append(f"client c={fmt_value(h['client_max_norm'])}")
    if h.get("server_momentum") is not None:
        parts.append(f"β={fmt_value(h['server_momentum'])}")
    if h.get("max_norm") is not None:
        parts.append(f"c={fmt_value(h['max_norm'])}")
    if h.get("max_delay") is not None:
        parts.append(f"R={h['max_delay']}")
    if h.get("batch_size") is not None:
        parts.append(f"B={h['batch_size']}")
    if h.get("delay_adaptive"):
        parts.append("delay-adaptive")
    if h.get("assign") == "random":
        parts.append("random assignment")
    return ", ".join(parts)


def paper_comparison(a: Analysis) -> list[dict[str, Any]]:
    """Rows comparing measured speedups with ``config['paper_reference']``.

    ``paper_reference`` maps a sweep-point label as the report prints it (``D=4``;
    ``-`` without a sweep) to ``{baseline: reported speedup}``. One row per
    (label, baseline): ``sweep``, ``baseline``, ``paper``, ``measured`` (NaN when
    that point or method was not run), ``censored`` (the reference or the baseline
    has seeds that never reached the target, so the measured ratio is uncertain).
    """
    ref_table = a.config.get("paper_reference") or {}
    sp = speedups(a)
    by_label = {a.point_label(p): p for p in a.points}
    rows: list[dict[str, Any]] = []
    for label, entries in ref_table.items():
        p = by_label.get(str(label))
        for m, paper in (entries or {}).items():
            measured = sp.get((p, m), math.nan) if p is not None else math.nan
            names = [m] if a.reference is None else [m, a.reference]
            cells = [a.best.get((p, x)) for x in names] if p is not None else []
            censored = any(c is not None and c.reached < len(c.runs) for c in cells)
            rows.append(
                {
                    "sweep": str(label),
                    "baseline": m,
                    "paper": float(paper),
                    "measured": measured,
                    "censored": censored,
                }
            )
    return rows


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
                _fmt(float(theta), 3) if theta is not None else "—",
                _fmt(float(e["r2"]), 3) if e.get("r2") is not None else "—",
                f"{e.get('k', '—')}/{e.get('n', '—')}",
                _fmt(float(e["max_norm_over_median"]), 3)
                if e.get("max_norm_over_median") is not None
                else "—",
                str(e.get("error", "")),
            ]
        )
    out += [
        _table(
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
                f"{m}'s {_change(g)}"
                for m, (_, _, g) in growth.items()
                if m != a.reference
            ]
            lines.append(
                f"{a.reference}'s best {a.score_name} "
                f"{_change(rg)} from {lo} to {hi} "
                f"({_fmt(r0.mean)} → {_fmt(r1.mean)})"
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


# ---------------------------------------------------------------------------
# Records of the best runs (for the curve, delay and norm plots).


def _panel_points(a: Analysis) -> list[tuple[Any, ...]]:
    if len(a.points) <= 2:
        return list(a.points)
    return [a.points[0], a.points[-1]]


# ---------------------------------------------------------------------------
# The report.


def _figures(a: Analysis, out: Path) -> dict[str, tuple[Path, str]]:
    from clipasync.reports import plots

    figs: dict[str, tuple[Path, str]] = {}
    xs = a.x_values()
    log2 = bool(xs) and min(xs or [0]) > 0 and max(xs or [0]) / min(xs or [1]) >= 4
    xlabel = (
        "D (compute time of the slow workers)"
        if a.sweep_keys == ["timing.slow_time"]
        else ", ".join(a.sweep_keys) or "configuration"
    )
    positions = xs if xs is not None else [float(i) for i in range(len(a.points))]
    metric = a.config["stop"]["target"]["metric"] if a.has_target else "loss"

    series = {}
    for m in a.methods:
        pts = [
            (positions[i], a.best[(p, m)])
            for i, p in enumerate(a.points)
            if (p, m) in a.best
        ]
        if pts:
            series[m] = (
                np.array([x for x, _ in pts]),
                np.array([c.mean for _, c in pts]),
                np.array([c.std for _, c in pts]),
            )
    figs["headline"] = (
        plots.headline(
            series,
            out / "headline.png",
            xlabel=xlabel,
            ylabel=f"best {a.score_name} (mean ± std over seeds)",
            log2=log2,
            cap=a.cap if a.has_target else None,
            title=f"{a.config.get('name', '')}: best {a.score_name} per method",
        ),
        f"Each method's best {a.score_name} (best over its grid; mean ± std over "
        "seeds) against the sweep value.",
    )

    panels: dict[str, dict[str, tuple[Array, Array]]] = {}
    for p in _panel_points(a):
        panel = {}
        for m in a.methods:
            cell = a.best.get((p, m))
            if cell is None:
                continue
            run = representative(cell)
            path = out / RUNS_DIR / run["run_id"] / "evals.csv"
            if path.is_file():
                ev = read_columns(path)
                if metric in ev:
                    panel[m] = (ev["time"], ev[metric])
        if panel:
            panels[a.point_label(p)] = panel
    if panels:
        target = a.config["stop"]["target"]["value"] if a.has_target else None
        figs["curves"] = (
            plots.curves(panels, out / "curves.png", ylabel=metric, target=target),
            f"{metric} against simulated time for the best configuration of each "
            "method (median seed).",
        )

    last = a.points[-1]
    delays: dict[str, Array] = {}
    norms: dict[str, tuple[Array, Array, float | None]] = {}
    for m in a.methods:
        cell = a.best.get((last, m))
        if cell is None:
            continue
        run = representative(cell)
        path = arrivals_path(out / RUNS_DIR / run["run_id"])
        if path is None:
            continue
        arr = read_columns(path)
        delays[m] = arr["delay"]
        if run.get("policy") == "async_sgd":
            ok = arr["applied"] > 0
            norms[m] = (
                arr["delay"][ok],
                arr["pre_clip_norm"][ok],
                cell.hyper.get("max_norm"),
            )
        elif "delta_norm" in arr:  # FedBuff: client delta norms (after client clip)
            ok = ~np.isnan(arr["delta_norm"])
            norms[m] = (
                arr["delay"][ok],
                arr["delta_norm"][ok],
                cell.hyper.get("client_max_norm"),
            )
    where = a.point_label(last)
    if delays:
        figs["delays"] = (
            plots.delay_histogram(
                delays, out / "delays.png", title=f"Delay of every arrival ({where})"
            ),
            f"Delay histogram per method at {where} (best configuration, median seed; "
            "discarded arrivals included).",
        )
    if norms:
        figs["norms"] = (
            plots.norm_vs_delay(
                norms,
                out / "norm_vs_delay.png",
                title=f"Pre-clip norm vs delay ({where})",
            ),
            f"Pre-clip gradient norm against delay at {where}: median per delay bin "
            "with the 10–90 % band; dashed lines mark max_norm (FedBuff: norm of "
            "the client delta as received, dashed: client_max_norm).",
        )
    clip_series = {}
    for m in a.methods:
        pts = [
            (positions[i], a.best[(p, m)])
            for i, p in enumerate(a.points)
            if (p, m) in a.best and a.best[(p, m)].hyper.get("max_norm") is not None
        ]
        if pts:
            clip_series[m] = (
                np.array([x for x, _ in pts]),
                np.array(
                    [
                        np.nanmean([_f(r.get("frac_clipped")) for r in c.runs])
                        for _, c in pts
                    ]
                ),
            )
    if clip_series:
        figs["clipped"] = (
            plots.fraction_clipped(
                clip_series, out / "fraction_clipped.png", xlabel=xlabel, log2=log2
            ),
            "Fraction of applied updates that were clipped (best configuration, mean "
            "over seeds).",
        )
    return figs


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


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
            f"target {target['metric']} {_direction(target['metric'])} "
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
            rows.append(
                [
                    a.point_label(p),
                    m,
                    f"{_fmt(c.mean)} ± {_fmt(c.std, 2)}",
                    reached if a.has_target else "—",
                    _hyper_text(c.hyper),
                    f"{np.nanmean([_f(r.get('mean_delay')) for r in c.runs]):.1f}",
                ]
            )
    out += [
        _table(
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
            + [_fmt(sp[(p, m)], 3) + "×" if (p, m) in sp else "—" for m in others]
            for p in a.points
        ]
        out += [_table(["sweep", *others], srows), ""]

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
                    _fmt(r["paper"], 3) + "×",
                    (_fmt(measured, 3) + "×") if math.isfinite(measured) else "—",
                    verdict + (" (censored seeds)" if r["censored"] else ""),
                ]
            )
        out += [
            _table(["sweep", "baseline", "paper", "measured", "verdict"], crows),
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
            out.append(
                f"- {a.point_label(p)}, {m} ({_hyper_text(c.hyper)}): never reached "
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
        _table(["method", "runs", "diverged", "never reached"], counts),
        "",
        "Files: `summary.csv` (one row per sweep point × method × grid point), "
        "`config.resolved.yaml`, `runs/<run_id>/` (summary.json, evals.csv, "
        "arrivals.csv.gz: one row per arrival, gzip-compressed CSV).",
        "",
    ]
    return "\n".join(out)


def build_report(out_dir: str | Path) -> Path:
    """Write ``summary.csv``, the PNG plots and ``report.md`` for a run directory.

    Returns:
        The path of ``report.md``.

    Raises:
        ConfigError: If the directory holds no resolved config or no finished run.
    """
    out = Path(out_dir)
    cfg_path = out / "config.resolved.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{out} is not a run directory (no config.resolved.yaml)")
    config = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    runs = load_runs(out)
    a = analyse(runs, config)
    write_rows_csv_atomic(out / "summary.csv", summary_rows(a))
    comparison = paper_comparison(a)
    if comparison:
        write_rows_csv_atomic(out / "paper_comparison.csv", comparison)
    diag_path = out / "diagnostics.json"
    diagnostics = None
    if diag_path.is_file():
        try:
            diagnostics = json.loads(diag_path.read_text(encoding="utf-8"))
        except ValueError:
            diagnostics = None
    figs = _figures(a, out)
    return write_text_atomic(
        out / "report.md", render_markdown(a, figs, runs, diagnostics)
    )
