"""Put several report directories side by side: one table and one headline plot.

Each report directory (written by ``clipasync run``) holds ``summary.csv`` (one row per
sweep point × method × grid point, the best grid point flagged) and
``config.resolved.yaml`` (its name, reference method and optional
``paper_reference``). :func:`compare_reports` reads only those two files and returns,
per (report, sweep point), the reference method's best time and its speedup over
every baseline, with the paper's reported speedup next to it when the config has one.
For a report of the tuning protocol (rows with a ``stage``) the score is the median
over evaluation seeds (``time_median``) and a speedup is a ratio of medians; a
censored score (``*_censored``: seeds that never reached the target) makes its
speedup a bound, printed "≥" (baseline censored) or "≤" (reference censored).

Command line: ``clipasync compare reports/fig2 reports/fig3 reports/fig4 --out DIR``
writes ``DIR/comparison.md`` and ``DIR/comparison.png`` and prints the table.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clipasync.errors import ConfigError
from clipasync.io import write_text_atomic


@dataclass
class ReportRow:
    """One (report, sweep point) of the comparison.

    Attributes:
        report: The report's experiment name (the directory name if absent).
        point: Sweep-point label as the report prints it (``D=4``; ``-`` if none).
        reference: Reference method (clipped ASGD in the paper configs).
        reference_score: Its best mean score (time to target, or final loss).
        reference_reached: ``"k/n"`` seeds of the best configuration that reached.
        score_name: ``time_to_target`` or ``final_loss``.
        speedups: Baseline → measured speedup (baseline best ÷ reference best).
        paper: Baseline → the paper's reported speedup (where given).
        bounds: Baseline → "≥" / "≤" where censoring makes its speedup a bound;
            ``"reference"`` → "≥" when the reference's score is a lower bound.
    """

    report: str
    point: str
    reference: str
    reference_score: float
    reference_reached: str
    score_name: str
    speedups: dict[str, float] = field(default_factory=dict)
    paper: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, str] = field(default_factory=dict)


def _label_value(v: str) -> str:
    try:
        f = float(v)
    except ValueError:
        return v
    return f"{f:g}"


def _short(key: str) -> str:
    return "D" if key == "timing.slow_time" else key.split(".")[-1]


def _score(row: dict[str, str]) -> tuple[float, bool]:
    """(score, censored) of a best row: the eval median under the tuning protocol,
    else the mean over seeds (censored: some seed never reached the target)."""
    if row.get("stage") and row.get("time_median"):
        return float(row["time_median"]), row.get("time_median_censored") in (
            "1",
            "True",
        )
    return float(row["mean"]), row.get("mean_censored") in ("1", "True")


def _bound(base_censored: bool, ref_censored: bool) -> str:
    if base_censored and ref_censored:
        return "?"
    return "≥" if base_censored else "≤" if ref_censored else ""


def read_report(path: str | Path) -> list[ReportRow]:
    """Return the comparison rows of one report directory.

    Raises:
        ConfigError: If ``summary.csv`` or ``config.resolved.yaml`` is missing.
    """
    d = Path(path)
    summary, cfg_path = d / "summary.csv", d / "config.resolved.yaml"
    for f in (summary, cfg_path):
        if not f.is_file():
            raise ConfigError(f"{d} is not a report directory (no {f.name})")
    config: dict[str, Any] = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    with open(summary, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("best") in ("1", "True")]
    keys = list((config.get("sweep") or {}).keys())
    reference = str(config.get("reference") or "")
    paper_ref: dict[str, dict[str, float]] = config.get("paper_reference") or {}
    name = str(config.get("name") or d.name)
    best: dict[str, dict[str, dict[str, str]]] = {}
    order: list[str] = []
    for r in rows:
        label = (
            ", ".join(f"{_short(k)}={_label_value(r.get(k, ''))}" for k in keys)
            if keys
            else "-"
        )
        if label not in best:
            order.append(label)
        best.setdefault(label, {})[r["method"]] = r
    out: list[ReportRow] = []
    for label in order:
        cells = best[label]
        ref = cells.get(reference)
        if ref is None:
            continue
        ref_mean, ref_censored = _score(ref)
        row = ReportRow(
            report=name,
            point=label,
            reference=reference,
            reference_score=ref_mean,
            reference_reached=f"{ref.get('reached', '?')}/{ref.get('seeds', '?')}",
            score_name=str(ref.get("score", "")),
            paper={k: float(v) for k, v in (paper_ref.get(label) or {}).items()},
        )
        if ref_censored:
            row.bounds["reference"] = "≥"
        for m, c in cells.items():
            if m != reference and ref_mean > 0:
                value, censored = _score(c)
                row.speedups[m] = value / ref_mean
                mark = _bound(censored, ref_censored)
                if mark:
                    row.bounds[m] = mark
        out.append(row)
    return out


def _fmt(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else "—"


def comparison_table(rows: list[ReportRow]) -> str:
    """Return a Markdown table: one line per (report, sweep point).

    Each baseline column shows the measured speedup of the reference method and, in
    parentheses, the paper's reported one.
    """
    baselines: list[str] = []
    for r in rows:
        for m in [*r.speedups, *r.paper]:
            if m not in baselines:
                baselines.append(m)
    header = ["report", "sweep", "reference", "reference best (reached)", *baselines]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        ref_mark = r.bounds.get("reference", "")
        cells = [
            r.report,
            r.point,
            r.reference,
            f"{ref_mark + ' ' if ref_mark else ''}{_fmt(r.reference_score)} "
            f"({r.reference_reached})",
        ]
        for m in baselines:
            mark = r.bounds.get(m, "")
            if m not in r.speedups:
                text = "—"
            elif mark == "?":  # both censored: the ratio bounds nothing
                text = "?"
            else:
                text = (f"{mark} " if mark else "") + _fmt(r.speedups[m]) + "×"
            if m in r.paper:
                text += f" (paper {_fmt(r.paper[m])}×)"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_plot(rows: list[ReportRow], path: Path) -> Path:
    """Grouped bars of the measured speedups per (report, sweep point).

    Black diamonds mark the paper's reported speedups; the dashed line is 1 (no
    speedup).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baselines: list[str] = []
    for r in rows:
        baselines.extend(m for m in r.speedups if m not in baselines)
    n_groups, n_bars = len(rows), max(1, len(baselines))
    width = 0.8 / n_bars
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * n_groups + 2), 4.4))
    for j, m in enumerate(baselines):
        xs = [i + (j - (n_bars - 1) / 2) * width for i in range(n_groups)]
        ys = [r.speedups.get(m, math.nan) for r in rows]
        ax.bar(xs, ys, width=width, label=f"vs {m}", color=f"C{j % 10}")
        paper = [r.paper.get(m, math.nan) for r in rows]
        ax.scatter(xs, paper, marker="D", color="k", s=18, zorder=3)
    ax.scatter([], [], marker="D", color="k", s=18, label="paper")
    ax.axhline(1.0, color="0.4", ls="--", lw=1)
    ax.set_xticks(list(range(n_groups)))
    ax.set_xticklabels([f"{r.report}\n{r.point}" for r in rows], fontsize=8)
    ax.set_ylabel("speedup of the reference method (> 1: faster)")
    ax.set_title("Measured speedups vs the paper's")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_reports(
    dirs: list[str | Path], out_dir: str | Path | None = None
) -> tuple[str, Path | None]:
    """Compare report directories; write ``comparison.md``/``.png`` to ``out_dir``.

    Args:
        dirs: Report directories (each with ``summary.csv``).
        out_dir: Where to write the table and the plot (created); ``None``: nowhere.

    Returns:
        The Markdown table and the path of ``comparison.md`` (``None`` if not
        written).

    Raises:
        ConfigError: If no directory is given or one is not a report directory.
    """
    if not dirs:
        raise ConfigError("give at least one report directory")
    rows: list[ReportRow] = []
    for d in dirs:
        rows += read_report(d)
    table = comparison_table(rows)
    if out_dir is None:
        return table, None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    comparison_plot(rows, out / "comparison.png")
    text = "\n".join(
        [
            "# Comparison of reports",
            "",
            "Speedup of each report's reference method over each baseline "
            "(baseline's best score ÷ the reference's; > 1: the reference is "
            "faster), the paper's reported value in parentheses.",
            "",
            "Reports: " + ", ".join(f"`{d}`" for d in dirs),
            "",
            table,
            "",
            "![comparison](comparison.png)",
            "",
        ]
    )
    return table, write_text_atomic(out / "comparison.md", text)
