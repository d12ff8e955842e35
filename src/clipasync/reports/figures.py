"""The PNG figures of a report and their captions.

Headline (each method's score against the sweep value: the median over evaluation
seeds with its interval under the tuning protocol, else the best mean ± std; a
censored value is an open marker with an upward arrow), curves (the metric
against time for the best configuration's median seed), delay histogram, pre-clip
norm against delay, and the fraction of clipped updates. The drawing itself is in
:mod:`clipasync.reports.plots` (matplotlib, imported only when figures are made).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.experiments.analysis import Analysis, representative
from clipasync.experiments.rundir import RUNS_DIR, arrivals_path
from clipasync.io import inside, read_columns
from clipasync.reports.scores import CellStats, Key
from clipasync.reports.text import as_float

Array = npt.NDArray[np.float64]


def _panel_points(a: Analysis) -> list[tuple[Any, ...]]:
    if len(a.points) <= 2:
        return list(a.points)
    return [a.points[0], a.points[-1]]


def _headline_series(
    a: Analysis, positions: list[float], stats: dict[Key, CellStats] | None
) -> dict[str, tuple[Array, Array, Array, Array, npt.NDArray[np.bool_]]]:
    """Per method: x, value, lower and upper end, censored (see plots.headline).

    With ``stats`` the median time to target and its interval; else the legacy
    mean ± std, censored when a seed never reached the target (a lower bound).
    """
    series = {}
    for m in a.methods:
        rows = []
        for i, p in enumerate(a.points):
            c = a.best.get((p, m))
            if c is None:
                continue
            st = stats.get((p, m)) if stats is not None else None
            iv = st.intervals.get("time") if st is not None else None
            if stats is not None:
                if iv is None:
                    continue
                rows.append(
                    (
                        positions[i],
                        iv.estimate.value,
                        iv.lower.value,
                        iv.upper.value,
                        not iv.estimate.exact,
                    )
                )
            else:
                censored = a.has_target and c.reached < len(c.runs)
                rows.append(
                    (positions[i], c.mean, c.mean - c.std, c.mean + c.std, censored)
                )
        if rows:
            cols = list(zip(*rows, strict=True))
            series[m] = (
                np.array(cols[0], dtype=float),
                np.array(cols[1], dtype=float),
                np.array(cols[2], dtype=float),
                np.array(cols[3], dtype=float),
                np.array(cols[4], dtype=bool),
            )
    return series


def report_figures(
    a: Analysis,
    out: Path,
    stats: dict[Key, CellStats] | None = None,
    confidence: float = 0.9,
) -> dict[str, tuple[Path, str]]:
    """Write the report's PNG figures; return name → (path, caption).

    ``stats`` (the tuning protocol's evaluation medians with their intervals at
    ``confidence``) makes the headline show medians; without it, means ± std.
    """
    import clipasync.reports.plots as plots

    pct = f"{100 * confidence:g} %"

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

    series = _headline_series(a, positions, stats)
    if stats is not None:
        ylabel = f"median {a.score_name} over seeds [{pct} interval]"
        caption = (
            f"Each method's median {a.score_name} over evaluation seeds (bars: the "
            f"{pct} order-statistic interval; open markers with an arrow: lower "
            "bounds, the median seed never reached the target) against the sweep "
            "value."
        )
    else:
        ylabel = f"best {a.score_name} (mean ± std over seeds)"
        caption = (
            f"Each method's best {a.score_name} (best over its grid; mean ± std over "
            "seeds) against the sweep value; open markers with an arrow: means "
            "over seeds that include runs that never reached the target (lower "
            "bounds)."
        )
    figs["headline"] = (
        plots.headline(
            series,
            out / "headline.png",
            xlabel=xlabel,
            ylabel=ylabel,
            log2=log2,
            cap=a.cap if a.has_target else None,
            title=f"{a.config.get('name', '')}: {a.score_name} per method",
        ),
        caption,
    )

    panels: dict[str, dict[str, tuple[Array, Array]]] = {}
    for p in _panel_points(a):
        panel = {}
        for m in a.methods:
            cell = a.best.get((p, m))
            if cell is None:
                continue
            run = representative(cell)
            path = inside(out, f"{RUNS_DIR}/{run['run_id']}/evals.csv", "record")
            if path.exists() and not path.is_file():
                raise ConfigError(f"{path}: not a file")
            if path.is_file():
                ev = read_columns(path, require=("time",))
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
        found = arrivals_path(out / RUNS_DIR / run["run_id"])
        if found is None:
            continue
        found = inside(out, str(found.relative_to(out)), "record")
        arr = read_columns(found, require=("delay", "applied", "pre_clip_norm"))
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
                        np.nanmean([as_float(r.get("frac_clipped")) for r in c.runs])
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
