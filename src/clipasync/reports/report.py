"""Turn a run directory into ``summary.csv``, ``report.md`` and PNG plots.

Under the tuning protocol (runs with a ``stage``) every reported number comes from
the ``eval`` runs: medians over evaluation seeds with intervals, speedups as
ratios of medians, the selection record and the robustness of each method on the
coarse grid (:mod:`clipasync.reports.protocol_report`). The rest of this
paragraph describes a legacy run directory (no protocol), whose report says in a
banner that it was selected and scored on the same seeds.

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

from pathlib import Path
from typing import Any

from clipasync.errors import ClipasyncError, ConfigError
from clipasync.experiments.analysis import (
    EVAL,
    LEGACY,
    REFINE,
    TUNE,
    analyse,
    coarse_grid_sizes,
    split_stages,
)
from clipasync.experiments.ray_backend import sim_to_real_section
from clipasync.experiments.rundir import load_runs
from clipasync.experiments.safe_yaml import load_yaml
from clipasync.io import (
    inside,
    read_json,
    read_text,
    write_rows_csv_atomic,
    write_text_atomic,
)
from clipasync.reports.figures import report_figures
from clipasync.reports.markdown import render_markdown
from clipasync.reports.protocol_report import ProtocolInputs, render_protocol
from clipasync.reports.protocol_tables import read_selection
from clipasync.reports.scaling import scaling_figure
from clipasync.reports.scores import cell_stats, speedup_intervals
from clipasync.reports.summary_table import paper_comparison, summary_rows


def _protocol_report(
    out: Path,
    config: dict[str, Any],
    stages: dict[str, list[dict[str, Any]]],
    diagnostics: dict[str, Any] | None,
) -> str:
    """Write ``summary.csv``, the figures and the paper comparison of a protocol
    run directory; return the text of its ``report.md``."""
    eval_runs = stages.get(EVAL, [])
    if not eval_runs:
        raise ConfigError(
            f"{out}: no finished evaluation runs (stage 'eval') to report on yet"
        )
    confidence = float((config.get("protocol") or {}).get("confidence", 0.9))
    a = analyse(eval_runs, config)
    tuned = analyse(stages[TUNE], config) if stages.get(TUNE) else None
    rows = summary_rows(a, EVAL, True, confidence)
    for stage in (TUNE, REFINE):
        if stages.get(stage):
            rows += summary_rows(
                analyse(stages[stage], config), stage, False, confidence
            )
    write_rows_csv_atomic(out / "summary.csv", rows)
    stats = cell_stats(a, confidence)
    sp = speedup_intervals(a, confidence)
    measured = {
        (p, m): iv.estimate.value for (p, m, s), iv in sp.items() if s == "time"
    }
    comparison = paper_comparison(a, measured)
    if comparison:
        write_rows_csv_atomic(out / "paper_comparison.csv", comparison)
    figs = report_figures(a, out, stats, confidence)
    scaling = scaling_figure(a, stats, out)
    if scaling is not None:
        figs["scaling"] = scaling
    inputs = ProtocolInputs(
        stages=stages,
        stats=stats,
        speedups=sp,
        tuned=tuned,
        selection=read_selection(out),
        budgets=coarse_grid_sizes(stages.get(TUNE, []), a.sweep_keys),
        confidence=confidence,
    )
    return render_protocol(a, inputs, figs, diagnostics)


def _legacy_report(
    out: Path,
    config: dict[str, Any],
    runs: list[dict[str, Any]],
    diagnostics: dict[str, Any] | None,
) -> str:
    a = analyse(runs, config)
    write_rows_csv_atomic(out / "summary.csv", summary_rows(a))
    comparison = paper_comparison(a)
    if comparison:
        write_rows_csv_atomic(out / "paper_comparison.csv", comparison)
    figs = report_figures(a, out)
    scaling = scaling_figure(a, cell_stats(a, 0.9), out)
    if scaling is not None:
        figs["scaling"] = scaling
    return render_markdown(a, figs, runs, diagnostics)


def build_report(out_dir: str | Path) -> Path:
    """Write ``summary.csv``, the PNG plots and ``report.md`` for a run directory.

    Runs with a ``stage`` (the tuning protocol) are reported from their ``eval``
    runs (:mod:`clipasync.reports.protocol_report`); runs without one as before,
    under a banner saying that selection and scoring used the same seeds.

    Returns:
        The path of ``report.md``.

    Raises:
        ConfigError: If the directory holds no resolved config or no finished run
            (for the protocol: no finished evaluation run).
    """
    out = Path(out_dir)
    cfg_path = inside(out, "config.resolved.yaml", "resolved config")
    if not cfg_path.is_file():
        raise ConfigError(f"{out} is not a run directory (no config.resolved.yaml)")
    config = load_yaml(read_text(cfg_path), str(cfg_path))
    if not isinstance(config, dict):
        raise ConfigError(f"{cfg_path}: not a resolved config (a mapping)")
    runs = load_runs(out)
    if not runs:
        raise ConfigError("no finished runs to report on")
    diag_path = out / "diagnostics.json"
    diagnostics = None
    if diag_path.is_file():
        try:
            diagnostics = read_json(diag_path)
        except ConfigError:
            diagnostics = None
        if not isinstance(diagnostics, dict):
            diagnostics = None
    try:
        stages = split_stages(runs)
        if set(stages) - {LEGACY}:
            text = _protocol_report(out, config, stages, diagnostics)
        else:
            text = _legacy_report(out, config, runs, diagnostics)
    except ClipasyncError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        # The records were checked field by field (experiments.records); what is
        # left is a combination no run writes, i.e. a directory edited by hand.
        raise ConfigError(
            f"{out}: the run records do not fit together ({type(exc).__name__}: "
            f"{exc!s:.80}); were they edited by hand?"
        ) from None
    return write_text_atomic(out / "report.md", text)


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
