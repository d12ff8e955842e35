"""Turn a run directory into ``summary.csv``, ``report.md`` and PNG plots.

For every (sweep point, method) the best grid point is the one with the smallest mean
time to target over seeds; a run that never reached the target counts as the time cap
(so a mean that includes such runs is a lower bound, and the report says "never
reached k/n"). Without a target, the final value of the loss is ranked instead. The
speedup of the reference method (clipped ASGD) over a baseline at a sweep point is
baseline's best mean ÷ reference's best mean (> 1: the reference is faster).

With ``paper_reference`` in the config the report puts the paper's reported speedups
next to the measured ones (``paper_comparison.csv`` too); with a ``diagnostics.json``
(:mod:`clipasync.experiments.diagnose`) it states the measured tail index of the
gradient noise.

The rows, the paper comparison and the findings are
:mod:`clipasync.reports.summary_table`, the figures :mod:`clipasync.reports.figures`,
the text of ``report.md`` :mod:`clipasync.reports.markdown`.

Command line: ``clipasync report RUN_DIR`` rebuilds everything from ``runs/``;
``clipasync run`` calls :func:`build_report` once the grid has run
(:func:`build_ray_report` with ``--backend ray``).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clipasync.errors import ConfigError
from clipasync.experiments.analysis import analyse
from clipasync.experiments.ray_backend import sim_to_real_section
from clipasync.experiments.rundir import load_runs
from clipasync.io import write_rows_csv_atomic, write_text_atomic
from clipasync.reports.figures import report_figures
from clipasync.reports.markdown import render_markdown
from clipasync.reports.summary_table import paper_comparison, summary_rows


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
    figs = report_figures(a, out)
    return write_text_atomic(
        out / "report.md", render_markdown(a, figs, runs, diagnostics)
    )


def build_ray_report(out_dir: str | Path) -> Path:
    """Build the report of a Ray experiment: :func:`build_report`, then a last
    section comparing each run's measured update rate and delays with the
    simulator's (:func:`clipasync.experiments.ray_backend.sim_to_real_section`).

    Returns:
        The path of ``report.md``.
    """
    path = build_report(out_dir)
    text = path.read_text() if path.is_file() else ""
    return write_text_atomic(path, text + "\n" + sim_to_real_section(out_dir))
