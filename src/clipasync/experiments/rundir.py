"""The run directory of an experiment, written atomically run by run::

    out/
      config.resolved.yaml   the expanded config (written first)
      runs.json              the run ids of this config, in grid order (with a
                             protocol: stage by stage, tune, refine, eval)
      selection.json         with a protocol: each method's pick on the tuning
                             seeds (experiments.protocol)
      runs/<run_id>/         summary.json, evals.csv, arrivals.csv.gz (gzip-compressed
                             CSV; runs of older versions have arrivals.csv) (atomic
                             rename), cancellations.csv.gz (one row per
                             cancelled job; only runs that cancel), final_x.npy
                             (last iterate; only with diagnostics "final"),
                             weights.pt (a PyTorch state_dict: user problems on
                             the simulator, every PyTorch problem on Ray)
      diagnostics.json       tail indices of the gradient noise (experiments.diagnose)
      summary.csv, report.md, *.png   (clipasync.reports.report.build_report)

A run whose ``summary.json`` is present is finished: a rerun loads it instead of
running it again; leftovers of killed runs are removed and redone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from clipasync.errors import ConfigError
from clipasync.experiments.build import check_user_problems
from clipasync.experiments.execute import RunOutcome
from clipasync.experiments.grid import RunSpec, expand
from clipasync.experiments.records import check_run_ids, check_summary
from clipasync.experiments.schema import ExperimentConfig
from clipasync.io import (
    atomic_dir,
    inside,
    read_json,
    remove_leftovers,
    write_csv_atomic,
    write_json_atomic,
    write_rows_csv_atomic,
    write_text_atomic,
)

RUNS_DIR = "runs"
SUMMARY_FILE = "summary.json"
FINAL_POINT_FILE = "final_x.npy"
#: A run's per-arrival record: a gzip-compressed CSV (``pandas.read_csv`` reads it).
ARRIVALS_FILE = "arrivals.csv.gz"
#: One row per cancelled job (arrival row index, time, job, worker); only written
#: for runs that cancel.
CANCELLATIONS_FILE = "cancellations.csv.gz"
#: The uncompressed name that runs written by earlier versions use; still read.
LEGACY_ARRIVALS_FILE = "arrivals.csv"


def arrivals_path(run_dir: Path) -> Path | None:
    """Return the arrival record of a run directory, or ``None`` if it has none.

    This is ``arrivals.csv.gz``, or the uncompressed ``arrivals.csv`` of a run
    written by an earlier version; read either with :func:`clipasync.io.read_columns`.
    """
    for name in (ARRIVALS_FILE, LEGACY_ARRIVALS_FILE):
        path = run_dir / name
        if path.is_file():
            return path
    return None


def save_run(
    outcome: RunOutcome,
    runs_dir: Path,
    record_arrivals: bool = True,
    save_final: bool = False,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a run as ``runs_dir/<run_id>/`` atomically (temp dir, then rename).

    With ``save_final`` the last iterate is kept as ``final_x.npy`` (for
    diagnostics measured at the end of a run); ``extra(tmp)`` writes further
    files into the run's folder before it is complete (``weights.pt``).
    """
    dest = runs_dir / str(outcome.summary["run_id"])
    with atomic_dir(dest) as tmp:
        if extra is not None:
            extra(tmp)
        if save_final and outcome.params is not None:
            np.save(tmp / FINAL_POINT_FILE, np.asarray(outcome.params))
        if record_arrivals:
            write_csv_atomic(tmp / ARRIVALS_FILE, outcome.arrivals)
            cancels = outcome.cancellations
            if len(cancels.get("job", ())):  # only runs that cancel have the file
                write_csv_atomic(tmp / CANCELLATIONS_FILE, cancels)
        write_rows_csv_atomic(
            tmp / "evals.csv", outcome.evals, columns=("time", "version", "arrivals")
        )
        # Written last: its presence marks a complete run, even without the rename.
        write_json_atomic(tmp / SUMMARY_FILE, outcome.summary)
    return dest


def load_summary(run_dir: Path) -> dict[str, Any] | None:
    """Return a finished run's summary, or ``None`` if it is absent or unreadable."""
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def prepare_out_dir(config: ExperimentConfig, out: Path) -> tuple[Path, list[RunSpec]]:
    """Create ``out/runs``, clear leftovers of killed runs, write the resolved config
    and the run index; return the runs directory and the expanded specs.

    A user problem (import path, data files) is built once before anything is
    written (:func:`~clipasync.experiments.build.check_user_problems`)."""
    runs_dir = out / RUNS_DIR
    specs = expand(config)
    check_user_problems([s.problem for s in specs])
    runs_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(runs_dir)
    write_text_atomic(
        out / "config.resolved.yaml",
        yaml.safe_dump(config.resolved(), sort_keys=False, default_flow_style=None),
    )
    write_json_atomic(out / "runs.json", [s.run_id for s in specs])
    return runs_dir, specs


def load_runs(
    out_dir: str | Path, run_ids: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Return the summaries of the finished runs of a report directory.

    Args:
        out_dir: Report directory.
        run_ids: Restrict to these ids (default: ``runs.json`` if present, else all).

    Raises:
        ConfigError: If ``runs.json`` or a summary is malformed, or names a path
            outside ``out_dir`` (:mod:`clipasync.experiments.records`).
    """
    out = Path(out_dir)
    runs_dir = out / RUNS_DIR
    if run_ids is None:
        index = inside(out, "runs.json", "run index")
        if index.exists() and not index.is_file():
            raise ConfigError(f"{index}: not a file")
        if index.is_file():
            run_ids = check_run_ids(read_json(index), index)
        elif runs_dir.is_dir():
            run_ids = sorted(
                p.name for p in runs_dir.iterdir() if not p.name.startswith(".")
            )
        else:
            run_ids = []
    out_list = []
    for rid in run_ids:
        path = inside(out, f"{RUNS_DIR}/{rid}/{SUMMARY_FILE}", "run record")
        if path.exists() or path.is_symlink():
            out_list.append(check_summary(read_json(path), path))
    return out_list
