"""What the high-probability study writes: per-method tails, tables, ECDF plot.

:class:`MethodTail` is the distribution over seeds of one method at one sweep point
(built by :func:`clipasync.reports.hp.run_high_probability`); this module turns a
list of them into the aligned text table ``clipasync hp`` prints,
``hp_summary.csv``, ``hp_report.md`` and ``hp_ecdf.png``. Quantiles follow the
censoring convention of :mod:`clipasync.diagnostics.quantiles`: a run that never
reached the target counts as +inf, and a quantile among those runs reads
"not reached".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipasync.diagnostics.quantiles import QuantileSummary, censored_ecdf
from clipasync.experiments.schema import ExperimentConfig
from clipasync.io import write_rows_csv_atomic, write_text_atomic


@dataclass
class MethodTail:
    """The distribution over seeds of one method at one sweep point.

    Attributes:
        point: Sweep point label (``-`` without a sweep).
        method: Method name.
        hyper: The grid point that was run.
        times: Time to target per seed (``inf``: never reached).
        avg_grad_norms: Average gradient norm per seed (``inf``: diverged).
        time_summary: Quantiles of ``times``.
        grad_summary: Quantiles of ``avg_grad_norms``.
    """

    point: str
    method: str
    hyper: dict[str, Any]
    times: list[float] = field(repr=False)
    avg_grad_norms: list[float] = field(repr=False)
    time_summary: QuantileSummary
    grad_summary: QuantileSummary


def _q(value: float | None) -> str:
    if value is None:
        return "-"
    return "not reached" if not math.isfinite(value) else f"{value:.4g}"


def summary_table(tails: Sequence[MethodTail]) -> tuple[list[str], list[list[str]]]:
    """Return the header and rows of the summary (strings, for text and markdown)."""
    levels: list[float] = []
    for t in tails:
        levels.extend(q for q, _ in t.time_summary.quantiles if q not in levels)
    header = ["point", "method", "seeds", "never reached"]
    header += [f"time p{100 * q:g}" for q in levels]
    header += [f"avg grad norm p{100 * q:g}" for q in levels]
    rows = []
    for t in tails:
        s, g = t.time_summary, t.grad_summary
        row = [
            t.point,
            t.method,
            str(s.num_samples),
            f"{s.num_censored}/{s.num_samples} ({100 * s.fraction_censored:.0f} %)",
        ]
        row += [_q(s.at(q)) for q in levels]
        row += [_q(g.at(q)) for q in levels]
        rows.append(row)
    return header, rows


def format_text(tails: Sequence[MethodTail]) -> str:
    """Return the summary as an aligned plain-text table."""
    header, rows = summary_table(tails)
    all_rows = [header, *rows]
    widths = [max(len(r[j]) for r in all_rows) for j in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if j < 2 else c.rjust(w)
            for j, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in all_rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def write_hp_report(
    tails: Sequence[MethodTail],
    out: Path,
    *,
    config: ExperimentConfig,
    seeds: int,
    seed_offset: int,
) -> list[Path]:
    """Write ``hp_summary.csv``, ``hp_report.md`` and ``hp_ecdf.png``.

    ``seeds`` runs per method were made from seed ``seed_offset`` on.
    """
    rows: list[dict[str, Any]] = []
    for t in tails:
        row: dict[str, Any] = {
            "point": t.point,
            "method": t.method,
            **{k: v for k, v in t.hyper.items() if not isinstance(v, dict)},
            "seeds": t.time_summary.num_samples,
            "never_reached": t.time_summary.num_censored,
            "fraction_never_reached": t.time_summary.fraction_censored,
        }
        for q, v in t.time_summary.quantiles:
            row[f"time_p{100 * q:g}"] = v
        for q, v in t.grad_summary.quantiles:
            row[f"avg_grad_norm_p{100 * q:g}"] = v
        rows.append(row)
    csv_path = out / "hp_summary.csv"
    write_rows_csv_atomic(csv_path, rows, columns=("point", "method"))
    target = config.stop.target
    header, table = summary_table(tails)
    md = [
        f"# High-probability report: {config.name}",
        "",
        f"{seeds} seeds per method (from {seed_offset}), budget "
        f"{config.stop.max_time} time units, target {target.metric if target else '-'}"
        f" <= {target.value if target else '-'}. Time = first evaluation at which "
        "the target holds; a run that never reaches it counts as +inf, so a "
        "quantile among those runs reads 'not reached'. Avg grad norm = mean of "
        "||grad f(x_t)|| over the run's evaluations (the paper's measure). A "
        "quantile q is shown only when seeds x (1 - q) >= 1.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in table),
        "",
        "![ECDF of the time to target](hp_ecdf.png)",
        "",
    ]
    md_path = write_text_atomic(out / "hp_report.md", "\n".join(md))
    png = plot_ecdf(tails, out / "hp_ecdf.png", cap=config.stop.max_time)
    return [csv_path, md_path, png]


def plot_ecdf(
    tails: Sequence[MethodTail], path: Path, *, cap: float | None = None
) -> Path:
    """Plot the ECDF of the time to target per method, one panel per sweep point.

    A curve ends at the fraction of seeds that reached the target; the gap to 1 is
    the never-reached fraction.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = list(dict.fromkeys(t.point for t in tails))
    methods = list(dict.fromkeys(t.method for t in tails))
    n = len(points)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.8 * cols, 3.6 * rows), squeeze=False, sharey=True
    )
    for k, p in enumerate(points):
        ax = axes[k // cols][k % cols]
        for t in tails:
            if t.point != p:
                continue
            x, f = censored_ecdf(t.times)
            i = methods.index(t.method)
            if x.size:
                right = cap if cap is not None else float(x[-1])
                xs = np.concatenate([[0.0], x, [right]])
                fs = np.concatenate([[0.0], f, [f[-1]]])
            else:
                xs, fs = np.array([0.0, cap or 1.0]), np.zeros(2)
            ax.step(xs, fs, where="post", color=f"C{i % 10}", label=t.method)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("simulated time to target")
        ax.set_title(p if p != "-" else "time to target", fontsize=9)
        ax.grid(True, alpha=0.3)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].set_ylabel("fraction of seeds reached")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
