"""Run an experiment: every pending run of its grid (or of each stage of its tuning
protocol), in-process or in a pool of worker processes, with a progress bar; then
its diagnostics.

Finished runs are loaded, not rerun (see :mod:`clipasync.experiments.rundir`). The
report is built separately, by :func:`clipasync.reports.report.build_report`.

Command line: ``clipasync run experiments/stragglers.yaml``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipasync.checkpoint import save_state_dict
from clipasync.errors import ConfigError
from clipasync.experiments.batched import execute_group, group_specs
from clipasync.experiments.build import build_problem, one_torch_thread
from clipasync.experiments.diagnose import tail_index_diagnostics
from clipasync.experiments.execute import execute
from clipasync.experiments.grid import RunSpec
from clipasync.experiments.limits import check_at_most
from clipasync.experiments.outlock import lock_out_dir
from clipasync.experiments.protocol import run_protocol
from clipasync.experiments.rundir import load_summary, prepare_out_dir, save_run
from clipasync.experiments.schema import ExperimentConfig
from clipasync.experiments.tensorboard import TENSORBOARD_DIR

#: A user PyTorch run's weights at its last evaluation (``model.load_state_dict(
#: torch.load(path, weights_only=True))``).
WEIGHTS_FILE = "weights.pt"


def weights_writer(spec: RunSpec, params: Any) -> Callable[[Path], None] | None:
    """Return what writes a user PyTorch problem's weights ``params`` (those of the
    run's last evaluation, which ``summary.json``'s ``final`` reports) into a run
    folder, or ``None`` (not a user problem, not PyTorch, no iterate).

    Only user problems (``factory``/``torch``): the built-in ones keep the files
    they always had."""
    if params is None or spec.problem.get("name") not in ("factory", "torch"):
        return None
    model = getattr(build_problem(spec.problem), "model", None)
    if model is None or "torch" not in sys.modules:
        return None

    def write(folder: Path) -> None:
        save_state_dict(model, params, folder / WEIGHTS_FILE)

    return write


def execute_and_save(
    spec: RunSpec, runs_dir: str, save_final: bool = False, tensorboard: bool = False
) -> dict[str, Any]:
    """Execute a spec and store it; return its summary (the unit of parallel work).

    With ``tensorboard`` its live scalars go to ``<out>/tensorboard/<run_id>/``.
    """
    board = Path(runs_dir).parent / TENSORBOARD_DIR / spec.run_id
    outcome = execute(spec, board) if tensorboard else execute(spec)
    save_run(
        outcome,
        Path(runs_dir),
        spec.record_arrivals,
        save_final,
        extra=weights_writer(spec, outcome.evaluated),
    )
    return outcome.summary


def execute_unit_and_save(
    specs: list[RunSpec],
    runs_dir: str,
    keep: frozenset[str],
    save_final: bool = False,
    tensorboard: bool = False,
) -> list[dict[str, Any]]:
    """Execute a unit of work, one run or a batch of them
    (:func:`~clipasync.experiments.batched.group_specs`), store the runs whose ids
    are in ``keep`` and return their summaries.

    A batch is always a whole group of its stage, finished runs included: a run's
    last floating-point bits may depend on the runs it shares a batch with, so
    the group an interrupted grid resumes is the one it started, and every run
    comes out bit for bit as in an uninterrupted one."""
    if len(specs) == 1:
        return [execute_and_save(specs[0], runs_dir, save_final, tensorboard)]
    summaries = []
    for spec, outcome in zip(specs, execute_group(specs), strict=True):
        if spec.run_id not in keep:
            continue
        save_run(
            outcome,
            Path(runs_dir),
            spec.record_arrivals,
            save_final,
            extra=weights_writer(spec, outcome.evaluated),
        )
        summaries.append(outcome.summary)
    return summaries


def resolve_workers(workers: str | int, num_runs: int) -> int:
    """Return the number of worker processes for ``num_runs`` pending runs.

    ``"auto"`` uses every available core, capped by the number of runs: on 2 cores
    a slice of the demo grid (88 runs) took 6.4 s with 2 processes (one BLAS
    thread each) against 10.6 s in-process.
    """
    if workers == "auto":
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, num_runs))
    try:
        check_at_most("--workers", int(workers), "processes", "processes")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return max(1, int(workers))


ProgressFn = Callable[[int, int], None]


def _single_threaded_blas() -> None:
    """Limit BLAS/OpenMP to one thread in a worker process.

    Several processes that each start one BLAS thread per core oversubscribe the
    machine: on 2 cores the demo grid ran 1.6× *slower* with 2 processes than
    in-process until this limit was set.
    """
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    else:
        threadpool_limits(1)
    one_torch_thread()  # torch (imported later, by a problem) gets 1 thread too


def _end_with_driver(driver: int) -> None:
    """Make this worker process exit as soon as the driver ``driver`` is gone.

    A driver killed outright (SIGKILL, an OOM kill) runs no clean-up, and without
    this its workers would finish the queued runs with no one to read them. Two
    guards: the kernel's parent-death signal (Linux; the parent is the forkserver,
    which exits with the driver), and a daemon thread that polls the driver's pid.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = os.getppid()

    def watch() -> None:
        while True:
            try:
                os.kill(driver, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pid reused by another user's process
                os._exit(1)
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.2)

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()


_PR_SET_PDEATHSIG = 1


def _init_worker(driver: int) -> None:
    """Initializer of a worker process: one BLAS thread, ends with its driver."""
    _end_with_driver(driver)
    _single_threaded_blas()


def _run_units(
    units: list[list[RunSpec]],
    keep: frozenset[str],
    runs_dir: Path,
    workers: int,
    on_done: Callable[[dict[str, Any]], None],
    save_final: bool = False,
    tensorboard: bool = False,
) -> None:
    """Execute the units of work (runs, or batches of runs) and store the runs in
    ``keep``, in this process or in ``workers`` processes."""
    if workers <= 1:
        for unit in units:
            for summary in execute_unit_and_save(
                unit, str(runs_dir), keep, save_final, tensorboard
            ):
                on_done(summary)
        return
    # spawn/forkserver, not fork: forking a process that may hold BLAS or torch
    # threads can deadlock, and both give the same results as in-process runs.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context(
        "forkserver" if "forkserver" in methods else "spawn"
    )
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )
    try:
        # Inside the try: submit() starts the worker processes, and a Ctrl-C
        # while it does must stop them too (else exit waits for their runs).
        futures = [
            pool.submit(
                execute_unit_and_save, u, str(runs_dir), keep, save_final, tensorboard
            )
            for u in units
        ]
        for fut in cf.as_completed(futures):
            for summary in fut.result():
                on_done(summary)
    except BaseException:
        # Ctrl-C or a failed run: stop the runs in flight now (each may take
        # minutes) instead of waiting for them; finished runs are already saved.
        _stop(pool)
        raise
    pool.shutdown()


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """End a pool's worker processes without waiting for their runs.

    Every live child process counts, not only those the pool has listed: a Ctrl-C
    between a worker's start and its entry in the pool's table would otherwise
    leave it running its run, and the interpreter's exit waiting for it."""
    listed = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    processes = list(
        {id(p): p for p in [*listed, *multiprocessing.active_children()]}.values()
    )
    for proc in processes:
        with contextlib.suppress(OSError, AttributeError):
            proc.terminate()
    for proc in processes:
        with contextlib.suppress(OSError, AttributeError, ValueError):
            proc.join(5)


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    workers: int | None = None,
    batch: bool | None = None,
) -> Path:
    """Run every spec of ``config`` into ``out_dir`` (the report is built apart).

    Finished runs (``runs/<run_id>/summary.json`` present) are loaded, not rerun;
    leftovers of killed runs are removed and redone. With a ``protocol`` block the
    runs go in stages, tune, refine and eval, each with its own progress bar
    (:func:`~clipasync.experiments.protocol.run_protocol`, which writes
    ``selection.json``). With a ``diagnostics`` block the
    tail indices are measured after the grid (:mod:`~clipasync.experiments.diagnose`,
    cached in ``diagnostics.json``).

    Args:
        config: Validated experiment.
        out_dir: Report directory (created).
        progress: Show a progress bar (runs done / total, ETA) on the terminal.
        workers: Override ``config.workers``.
        batch: Override ``config.batch_grid``: run the configurations that share
            an event sequence side by side (:mod:`clipasync.experiments.batched`).

    Returns:
        ``out_dir`` as a path.

    Raises:
        ConfigError: If another run holds ``out_dir``
            (:func:`~clipasync.experiments.outlock.lock_out_dir`).
    """
    with lock_out_dir(out_dir) as out:
        return _run_locked(config, out, progress, workers, batch)


def _run_locked(
    config: ExperimentConfig,
    out: Path,
    progress: bool,
    workers: int | None,
    batch: bool | None,
) -> Path:
    runs_dir, specs = prepare_out_dir(config, out)
    tail = config.diagnostics.tail_index if config.diagnostics else None
    save_final = tail is not None and "final" in tail.at
    board = config.outputs is not None and config.outputs.tensorboard
    # TensorBoard writes each run live from its own event loop: such grids run one
    # by one.
    batched = (config.batch_grid if batch is None else batch) and not board

    def run_stage(stage: str | None, specs: list[RunSpec]) -> None:
        pending = frozenset(
            s.run_id for s in specs if load_summary(runs_dir / s.run_id) is None
        )
        # Whole groups of the stage, so that a resumed batch is the one it began as.
        units = [
            u
            for u in group_specs(specs, batched)
            if any(s.run_id in pending for s in u)
        ]
        n_workers = resolve_workers(
            workers if workers is not None else config.workers, len(units)
        )
        _execute_with_progress(
            units,
            pending,
            runs_dir,
            n_workers,
            len(specs),
            progress,
            save_final,
            stage,
            board,
        )

    if config.protocol is None:
        run_stage(None, specs)
    else:
        run_protocol(config, out, runs_dir, run_stage)
    if tail is not None:
        tail_index_diagnostics(config, out)
    return out


def _execute_with_progress(
    units: list[list[RunSpec]],
    pending: frozenset[str],
    runs_dir: Path,
    workers: int,
    total: int,
    progress: bool,
    save_final: bool = False,
    stage: str | None = None,
    tensorboard: bool = False,
) -> None:
    done_before = total - len(pending)
    if not progress:
        _run_units(
            units, pending, runs_dir, workers, lambda s: None, save_final, tensorboard
        )
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        label = f"{stage or 'runs'} ({workers} process{'es' if workers > 1 else ''})"
        if done_before:
            label += f", {done_before} reused"
        task = bar.add_task(label, total=total, completed=done_before)
        _run_units(
            units,
            pending,
            runs_dir,
            workers,
            lambda s: bar.advance(task),
            save_final,
            tensorboard,
        )
