"""PNG figures of an experiment report (matplotlib, Agg backend; imported only here).

Each function takes plain arrays prepared by :mod:`clipasync.reports.figures` and
writes one file, so the figures can be regenerated from a run directory without
rerunning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: reports are built on headless machines too

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

_MARKERS = "osD^v<>phX*"


def _style(i: int) -> dict[str, Any]:
    return {"marker": _MARKERS[i % len(_MARKERS)], "color": f"C{i % 10}"}


def _x_axis(ax: Any, xs: Sequence[float], log2: bool, label: str) -> None:
    if log2:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlabel(label)


def measured(
    ax: Any,
    x: Array,
    y: Array,
    lo: Array,
    hi: Array,
    censored: npt.NDArray[np.bool_],
    style: dict[str, Any],
    label: str,
) -> None:
    """Draw measured points with error bars from ``lo`` to ``hi``.

    A censored point (``y`` only a lower bound: seeds that never reached the target)
    is an open marker with an upward arrow.
    """
    ok = np.isfinite(y)
    x, y, lo, hi, censored = x[ok], y[ok], lo[ok], hi[ok], censored[ok]
    yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
    yerr = np.where(np.isfinite(yerr), yerr, 0.0)
    color = style["color"]
    ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=color, capsize=3, lw=1)
    ax.plot(x, y, color=color, lw=1.5, label=label, marker=style["marker"])
    if censored.any():
        ax.plot(
            x[censored],
            y[censored],
            ls="none",
            marker=style["marker"],
            mfc="white",
            mec=color,
            ms=8,
            zorder=3,
        )
        # Invisible points at the arrow tips, so that autoscaling keeps them in view.
        ax.plot(x[censored], y[censored] * 1.5, ls="none", alpha=0.0)
        for xc, yc in zip(x[censored], y[censored], strict=True):
            ax.annotate(
                "",
                xy=(xc, yc * 1.5),
                xytext=(xc, yc),
                arrowprops={"arrowstyle": "->", "color": color, "lw": 1.2},
            )


def _censored_legend(ax: Any, any_censored: bool) -> None:
    if any_censored:
        ax.plot(
            [],
            [],
            ls="none",
            marker="o",
            mfc="white",
            mec="0.3",
            label="≥ (seeds never reached: lower bound)",
        )


def headline(
    series: Mapping[str, tuple[Array, Array, Array, Array, npt.NDArray[np.bool_]]],
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    log2: bool,
    cap: float | None,
    title: str,
) -> Path:
    """Plot each method's score (with its error bar) against the sweep value.

    Args:
        series: method → (x, value, lower end, upper end, censored); a censored value
            is a lower bound (open marker, upward arrow).
        path: Output PNG.
        xlabel: Label of the sweep axis.
        ylabel: Label of the metric.
        log2: Log₂ x axis.
        cap: Time cap (dashed line: runs that never reached the target stop there).
        title: Figure title.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs_all: set[float] = set()
    any_censored = False
    for i, (name, (x, y, lo, hi, cens)) in enumerate(series.items()):
        measured(ax, x, y, lo, hi, cens, _style(i), name)
        xs_all.update(float(v) for v in x)
        any_censored = any_censored or bool(cens.any())
    if cap is not None:
        ax.axhline(cap, color="0.5", ls="--", lw=1, label="time cap")
    _censored_legend(ax, any_censored)
    _x_axis(ax, sorted(xs_all), log2, xlabel)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scaling(
    panels: Sequence[tuple[str, Array]],
    series: Mapping[str, tuple[Array, Array, Array, npt.NDArray[np.bool_], Array]],
    path: Path,
    *,
    ylabel: str,
    title: str,
) -> Path:
    """Measured counts against delay measures, with the theory's predicted curves.

    Args:
        panels: (x label, x per sweep point), one panel each (τ_max, τ_C).
        series: method → (value, lower end, upper end, censored, theory) per sweep
            point; theory NaN where the method has no bound (dashed line).
        path: Output PNG.
        ylabel: Label of the counts.
        title: Figure title.
    """
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.2), squeeze=False, sharey=True)
    any_censored = False
    for ax, (xlabel, xs) in zip(axes[0], panels, strict=True):
        order = np.argsort(xs, kind="stable")
        for i, (name, (y, lo, hi, cens, theory)) in enumerate(series.items()):
            style = _style(i)
            x = xs[order]
            measured(ax, x, y[order], lo[order], hi[order], cens[order], style, name)
            any_censored = any_censored or bool(cens.any())
            t = theory[order]
            if np.isfinite(t).any():
                ok = np.isfinite(t)
                ax.plot(
                    x[ok],
                    t[ok],
                    ls="--",
                    lw=1.2,
                    color=style["color"],
                    label=f"{name}: theory",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    _censored_legend(axes[0][0], any_censored)
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves(
    panels: Mapping[str, Mapping[str, tuple[Array, Array]]],
    path: Path,
    *,
    ylabel: str,
    target: float | None,
) -> Path:
    """Plot a metric against simulated time for the best run of each method.

    Args:
        panels: panel title → method → (time, metric).
        path: Output PNG.
        ylabel: Metric name.
        target: Target value (dotted line).
    """
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 4.0), squeeze=False, sharey=True)
    for ax, (title, methods) in zip(axes[0], panels.items(), strict=True):
        for i, (name, (t, y)) in enumerate(methods.items()):
            ax.plot(t, y, label=name, color=f"C{i % 10}", lw=1.3)
        if target is not None:
            ax.axhline(target, color="k", ls=":", lw=1, label="target")
        ax.set_yscale("log")
        ax.set_xlabel("simulated time")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def delay_histogram(delays: Mapping[str, Array], path: Path, *, title: str) -> Path:
    """Histogram of delays per method (log y), one panel per method."""
    n = len(delays)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False, sharex=True
    )
    top = max((float(d.max()) for d in delays.values() if d.size), default=1.0)
    bins = np.arange(0, top + 2) - 0.5 if top <= 200 else 100
    for k, (name, d) in enumerate(delays.items()):
        ax = axes[k // cols][k % cols]
        ax.hist(d, bins=bins, color=f"C{k % 10}")
        ax.set_yscale("log")
        ax.set_title(f"{name} (mean {d.mean():.1f})" if d.size else name, fontsize=9)
        ax.set_xlabel("delay")
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def norm_vs_delay(
    data: Mapping[str, tuple[Array, Array, float | None]], path: Path, *, title: str
) -> Path:
    """Median pre-clip gradient norm per delay bin (with the 10–90 % band).

    Args:
        data: method → (delays, pre-clip norms, max_norm or None).
        path: Output PNG.
        title: Figure title.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (name, (d, g, c)) in enumerate(data.items()):
        ok = np.isfinite(g)
        d, g = d[ok], g[ok]
        if not d.size:
            continue
        edges = np.unique(np.round(np.geomspace(1, d.max() + 1, 25)))
        edges = np.concatenate([[0.0], edges])
        idx = np.digitize(d, edges[1:], right=False)
        xs, med, lo, hi = [], [], [], []
        for b in np.unique(idx):
            sel = g[idx == b]
            if sel.size < 5:
                continue
            xs.append(float(np.median(d[idx == b])))
            q = np.quantile(sel, [0.1, 0.5, 0.9])
            lo.append(q[0])
            med.append(q[1])
            hi.append(q[2])
        style = _style(i)
        ax.plot(xs, med, label=name, ms=4, **style)
        ax.fill_between(xs, lo, hi, color=style["color"], alpha=0.15)
        if c is not None:
            ax.axhline(c, color=style["color"], ls="--", lw=1)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_yscale("log")
    ax.set_xlabel("delay")
    ax.set_ylabel("pre-clip gradient norm (median, 10–90 %)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fraction_clipped(
    series: Mapping[str, tuple[Array, Array]], path: Path, *, xlabel: str, log2: bool
) -> Path:
    """Fraction of applied updates that were clipped against the sweep value."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    xs_all: set[float] = set()
    for i, (name, (x, f)) in enumerate(series.items()):
        ax.plot(x, f, label=name, **_style(i))
        xs_all.update(float(v) for v in x)
    _x_axis(ax, sorted(xs_all), log2, xlabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction of updates clipped")
    ax.set_title("Clipping activity of the best runs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
