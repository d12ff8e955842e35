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


def headline(
    series: Mapping[str, tuple[Array, Array, Array]],
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    log2: bool,
    cap: float | None,
    title: str,
) -> Path:
    """Plot each method's best metric (mean ± std over seeds) against the sweep value.

    Args:
        series: method → (x, mean, std).
        path: Output PNG.
        xlabel: Label of the sweep axis.
        ylabel: Label of the metric.
        log2: Log₂ x axis.
        cap: Time cap (dashed line: runs that never reached the target count as it).
        title: Figure title.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs_all: set[float] = set()
    for i, (name, (x, mean, std)) in enumerate(series.items()):
        ax.errorbar(x, mean, yerr=std, label=name, capsize=3, lw=1.5, **_style(i))
        xs_all.update(float(v) for v in x)
    if cap is not None:
        ax.axhline(cap, color="0.5", ls="--", lw=1, label="time cap")
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
