"""Expand an experiment config into runs, execute them, and store each one atomically.

The grid is sweep point × method × grid point × seed. Each :class:`RunSpec` is plain
data with a stable ``run_id`` (a readable slug plus a short hash of its resolved
settings), so a rerun into the same output directory finds the runs that already
finished and skips them::

    out/
      config.resolved.yaml   the expanded config (written first)
      runs.json              the run ids of this config, in grid order
      runs/<run_id>/         summary.json, evals.csv, arrivals.csv (atomic rename)
      summary.csv, report.md, *.png   (clipasync.report)

Every random stream of a run comes from its one seed (:mod:`clipasync.seeding`); the
problem's data come from the problem's own ``seed`` keyword, so all runs of an
experiment optimise the same objective and a worker process builds it once.

Command line: ``clipasync run experiments/stragglers.yaml``.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import yaml

from clipasync.config import ExperimentConfig
from clipasync.engine import StopRule, Target, run
from clipasync.errors import ConfigError
from clipasync.io import (
    atomic_dir,
    read_json,
    remove_leftovers,
    write_csv_atomic,
    write_json_atomic,
    write_rows_csv_atomic,
    write_text_atomic,
)
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.base import ServerPolicy
from clipasync.policies.rennala import Rennala, SyncMinibatch
from clipasync.policies.ringmaster import Ringmaster
from clipasync.problems.base import Problem
from clipasync.recorder import Recorder
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.timing import (
    ComputeTimeModel,
    FixedTimes,
    TraceTimes,
    random_times,
    sqrt_times,
    two_speed,
)
from clipasync.transforms import (
    GradientTransform,
    chain,
    clip_by_norm,
    scale,
    scale_by_delay,
)

RUNS_DIR = "runs"
SUMMARY_FILE = "summary.json"

# ---------------------------------------------------------------------------
# Run specifications.


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, as plain data (sent to worker processes).

    Attributes:
        run_id: Stable id: readable slug + hash of the other fields.
        method: Method name in the config.
        policy: Policy kind (``async_sgd``, ``ringmaster``, ...).
        hyper: Grid point: ``stepsize``, ``max_norm`` and the policy's fields.
        seed: Root seed of every random stream of the run.
        sweep: The sweep point (dotted key → value); empty without a sweep.
        problem: Resolved problem config (name, kwargs, noise).
        timing: Resolved timing config (kind and parameters).
        stop: Resolved stop rule.
        eval_every: Evaluation cadence in simulated time.
        record_arrivals: Write the per-arrival CSV.
    """

    run_id: str
    method: str
    policy: str
    hyper: dict[str, Any]
    seed: int
    sweep: dict[str, Any]
    problem: dict[str, Any]
    timing: dict[str, Any]
    stop: dict[str, Any]
    eval_every: float | None
    record_arrivals: bool = True

    def settings(self) -> dict[str, Any]:
        """Return every field but ``run_id`` (what the id's hash covers)."""
        d = asdict(self)
        d.pop("run_id")
        return d


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_HYPER_TAGS = {"stepsize": "g", "max_norm": "c", "max_delay": "R", "batch_size": "B"}


def make_run_id(settings: dict[str, Any]) -> str:
    """Return ``<method>-<sweep>-<hyper>-s<seed>-<hash8>`` for a run's settings.

    The hash is SHA-256 of the settings as canonical JSON, so the id changes whenever
    anything that affects the run changes, and never otherwise.
    """
    canonical = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    parts = [settings["method"]]
    parts += [f"{k.split('.')[-1]}{_fmt(v)}" for k, v in settings["sweep"].items()]
    hyper = settings["hyper"]
    parts += [
        f"{tag}{_fmt(hyper[k])}"
        for k, tag in _HYPER_TAGS.items()
        if hyper.get(k) is not None
    ]
    parts.append(f"s{settings['seed']}")
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", "-".join(str(p) for p in parts))
    return f"{slug}-{digest}"


def expand(config: ExperimentConfig) -> list[RunSpec]:
    """Return every run of the experiment: sweep point × method × grid point × seed.

    Raises:
        ConfigError: If a sweep point makes the config invalid.
    """
    specs: list[RunSpec] = []
    for point in config.sweep_points():
        cfg = config.at(point) if point else config
        problem = cfg.problem.model_dump(mode="json", exclude_none=True)
        timing = cfg.timing.model_dump(mode="json", exclude_none=True)
        stop = cfg.stop.model_dump(mode="json", exclude_none=True)
        for name, method in cfg.methods.items():
            for hyper in method.grid():
                for seed in cfg.seeds:
                    settings: dict[str, Any] = {
                        "method": name,
                        "policy": method.policy,
                        "hyper": hyper,
                        "seed": seed,
                        "sweep": dict(point),
                        "problem": problem,
                        "timing": timing,
                        "stop": stop,
                        "eval_every": cfg.eval_every,
                        "record_arrivals": cfg.record_arrivals,
                    }
                    specs.append(RunSpec(run_id=make_run_id(settings), **settings))
    ids = [s.run_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ConfigError(
            "config error: two runs have identical settings (duplicate grid)"
        )
    return specs


# ---------------------------------------------------------------------------
# Builders: config data → library objects.


def build_transform(hyper: dict[str, Any]) -> GradientTransform:
    """Return the gradient transform of a grid point.

    ``max_norm`` set: ``chain(clip_by_norm(c), scale(γ))`` (clipped ASGD, Alg. 1);
    ``delay_adaptive``: ``scale_by_delay(γ)`` (γ·min(1, n/delay)); else ``scale(γ)``.
    """
    gamma = float(hyper["stepsize"])
    step = scale_by_delay(gamma) if hyper.get("delay_adaptive") else scale(gamma)
    max_norm = hyper.get("max_norm")
    if max_norm is None:
        return step
    return chain(clip_by_norm(float(max_norm)), step)


def build_policy(policy: str, hyper: dict[str, Any]) -> ServerPolicy[Any]:
    """Return the server policy of a method at one grid point.

    Args:
        policy: ``async_sgd``, ``ringmaster``, ``rennala`` or ``minibatch``.
        hyper: ``stepsize``, optional ``max_norm``/``delay_adaptive`` and the
            policy's own fields (``assign``, ``max_delay``/``cancel_stale``,
            ``batch_size``).

    Raises:
        ConfigError: On an unknown policy or an invalid hyperparameter.
    """
    t = build_transform(hyper)
    built: object
    if policy == "async_sgd":
        built = AsyncSGD(t, assign=hyper.get("assign", "same"))
    elif policy == "ringmaster":
        built = Ringmaster(
            t,
            max_delay=int(hyper["max_delay"]),
            cancel_stale=bool(hyper.get("cancel_stale", False)),
        )
    elif policy == "rennala":
        built = Rennala(t, batch_size=int(hyper["batch_size"]))
    elif policy == "minibatch":
        built = SyncMinibatch(t)
    else:
        built = None
    if built is not None:
        # The frozen policy dataclasses expose ``name`` read-only, which mypy does not
        # accept for the protocol's plain ``name: str`` attribute.
        return cast("ServerPolicy[Any]", built)
    raise ConfigError(
        f"unknown policy {policy!r}; choose one of: async_sgd, ringmaster, rennala, "
        "minibatch"
    )


def build_timing(timing: dict[str, Any]) -> ComputeTimeModel:
    """Return the compute-time model of a resolved timing config.

    Raises:
        ConfigError: On an unknown kind or invalid parameters.
    """
    p = dict(timing)
    kind = p.pop("kind")
    if kind == "two_speed":
        return two_speed(
            num_fast=int(p.get("num_fast", 8)),
            num_slow=int(p.get("num_slow", 8)),
            slow_time=float(p.get("slow_time", 4.0)),
            fast_time=float(p.get("fast_time", 1.0)),
        )
    if kind == "fixed":
        return FixedTimes(tuple(float(t) for t in p["times"]))
    if kind == "sqrt":
        return sqrt_times(int(p["num_workers"]))
    if kind == "trace":
        return TraceTimes.from_csv(p["path"], cycle=bool(p.get("cycle", False)))
    if kind in ("exponential", "lognormal", "pareto", "slow_prob"):
        mean = p.pop("mean", 1.0)
        num_workers = p.pop("num_workers", None)
        return random_times(kind, mean, num_workers, **p)
    raise ConfigError(f"unknown timing kind {kind!r}")


# One problem per resolved problem config and process: constructing one (a random
# design, an x* by least squares, a dataset) can cost far more than a short run.
_PROBLEM_CACHE: dict[str, Problem] = {}


def _construct_problem(cfg: dict[str, Any]) -> Problem:
    from clipasync.problems import make_problem

    kwargs = {k: v for k, v in cfg.items() if k not in ("name", "noise")}
    try:
        return make_problem(cfg["name"], noise=cfg.get("noise"), **kwargs)
    except ConfigError as exc:
        raise ConfigError(f"config error at problem: {exc}") from None


def build_problem(cfg: dict[str, Any]) -> Problem:
    """Return the problem of a resolved problem config (cached per process).

    Raises:
        ConfigError: On an unknown problem or invalid keyword arguments.
    """
    key = json.dumps(cfg, sort_keys=True, default=str)
    problem = _PROBLEM_CACHE.get(key)
    if problem is None:
        problem = _construct_problem(cfg)
        _PROBLEM_CACHE[key] = problem
    return problem


def build_stop(stop: dict[str, Any]) -> StopRule:
    """Return the engine's stop rule of a resolved stop config."""
    target = stop.get("target")
    return StopRule(
        max_time=stop.get("max_time"),
        max_updates=stop.get("max_updates"),
        max_arrivals=stop.get("max_arrivals"),
        target=Target(target["metric"], float(target["value"])) if target else None,
        diverge_factor=float(stop.get("diverge_factor", 1e6)),
    )


# ---------------------------------------------------------------------------
# Executing one run.


@dataclass
class RunOutcome:
    """A finished run: its summary and its records.

    Attributes:
        summary: JSON-ready summary (see :func:`execute`).
        arrivals: Arrival columns (``Recorder.arrival_arrays``).
        evals: Evaluation rows.
    """

    summary: dict[str, Any]
    arrivals: dict[str, np.ndarray[Any, Any]] = field(repr=False)
    evals: list[dict[str, float]] = field(repr=False)


def _nanmean(a: np.ndarray[Any, Any]) -> float:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


def execute(spec: RunSpec) -> RunOutcome:
    """Run one spec on the simulator and summarise it.

    The summary holds the spec's fields plus ``stop_reason``, ``reached``,
    ``time_to_target``, ``sim_time``, ``version``, ``counts``, ``initial`` and
    ``final`` metrics, ``wall_time`` (seconds), ``updates_per_time``,
    ``mean_delay``/``max_delay`` (over applied updates), ``frac_clipped`` (over
    applied updates that went through a clip) and ``mean_pre_clip_norm``.
    """
    problem = build_problem(spec.problem)
    timing = build_timing(spec.timing)
    policy = build_policy(spec.policy, spec.hyper)
    pool = SimulatedPool(
        timing, lambda w, x, rng: problem.stochastic_grad(x, rng, w), spec.seed
    )
    recorder = Recorder(keep_arrivals=True)
    t0 = time.perf_counter()
    try:
        result = run(
            policy,
            pool,
            problem.initial_point(),
            stop=build_stop(spec.stop),
            rng=stream(spec.seed, Stream.POLICY),
            evaluate=problem.evaluate,
            eval_every=spec.eval_every,
            recorder=recorder,
        )
    finally:
        pool.close()
    wall = time.perf_counter() - t0
    arr = recorder.arrival_arrays()
    applied = arr["applied"].astype(bool)
    delays = arr["delay"][applied]
    clipped = arr["clipped"][applied]
    summary: dict[str, Any] = {
        **asdict(spec),
        "stop_reason": result.stop_reason,
        "reached": result.time_to_target is not None,
        "time_to_target": result.time_to_target,
        "sim_time": result.time,
        "version": result.version,
        "counts": result.counts,
        "initial": recorder.evals[0] if recorder.evals else {},
        "final": recorder.evals[-1] if recorder.evals else {},
        "wall_time": wall,
        "updates_per_time": result.version / result.time if result.time > 0 else 0.0,
        "mean_delay": float(delays.mean()) if delays.size else math.nan,
        "max_delay": int(delays.max()) if delays.size else 0,
        "frac_clipped": _nanmean(clipped),
        "mean_pre_clip_norm": _nanmean(arr["pre_clip_norm"]),
    }
    return RunOutcome(summary, arr, recorder.evals)


def save_run(outcome: RunOutcome, runs_dir: Path, record_arrivals: bool = True) -> Path:
    """Write a run as ``runs_dir/<run_id>/`` atomically (temp dir, then rename)."""
    dest = runs_dir / str(outcome.summary["run_id"])
    with atomic_dir(dest) as tmp:
        if record_arrivals:
            write_csv_atomic(tmp / "arrivals.csv", outcome.arrivals)
        write_rows_csv_atomic(
            tmp / "evals.csv", outcome.evals, columns=("time", "version")
        )
        # Written last: its presence marks a complete run, even without the rename.
        write_json_atomic(tmp / SUMMARY_FILE, outcome.summary)
    return dest


def execute_and_save(spec: RunSpec, runs_dir: str) -> dict[str, Any]:
    """Execute a spec and store it; return its summary (the unit of parallel work)."""
    outcome = execute(spec)
    save_run(outcome, Path(runs_dir), spec.record_arrivals)
    return outcome.summary


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


# ---------------------------------------------------------------------------
# Running an experiment.


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
        return
    threadpool_limits(1)


def _run_specs(
    specs: list[RunSpec],
    runs_dir: Path,
    workers: int,
    on_done: Callable[[dict[str, Any]], None],
) -> None:
    if workers <= 1:
        for spec in specs:
            on_done(execute_and_save(spec, str(runs_dir)))
        return
    # spawn/forkserver, not fork: forking a process that may hold BLAS or torch
    # threads can deadlock, and both give the same results as in-process runs.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context(
        "forkserver" if "forkserver" in methods else "spawn"
    )
    with cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_single_threaded_blas
    ) as pool:
        futures = [pool.submit(execute_and_save, s, str(runs_dir)) for s in specs]
        try:
            for fut in cf.as_completed(futures):
                on_done(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    workers: int | None = None,
    report: bool = True,
) -> Path:
    """Run every spec of ``config`` into ``out_dir`` and build the report.

    Finished runs (``runs/<run_id>/summary.json`` present) are loaded, not rerun;
    leftovers of killed runs are removed and redone.

    Args:
        config: Validated experiment.
        out_dir: Report directory (created).
        progress: Show a progress bar (runs done / total, ETA) on the terminal.
        workers: Override ``config.workers``.
        report: Build ``summary.csv``, ``report.md`` and the plots at the end.

    Returns:
        ``out_dir`` as a path.
    """
    out = Path(out_dir)
    runs_dir = out / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(runs_dir)
    specs = expand(config)
    write_text_atomic(
        out / "config.resolved.yaml",
        yaml.safe_dump(config.resolved(), sort_keys=False, default_flow_style=None),
    )
    write_json_atomic(out / "runs.json", [s.run_id for s in specs])
    pending = [s for s in specs if load_summary(runs_dir / s.run_id) is None]
    n_workers = resolve_workers(
        workers if workers is not None else config.workers, len(pending)
    )
    _execute_with_progress(pending, runs_dir, n_workers, len(specs), progress)
    if report:
        from clipasync.report import build_report

        build_report(out)
    return out


def _execute_with_progress(
    pending: list[RunSpec], runs_dir: Path, workers: int, total: int, progress: bool
) -> None:
    done_before = total - len(pending)
    if not progress:
        _run_specs(pending, runs_dir, workers, lambda s: None)
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
        label = f"runs ({workers} process{'es' if workers > 1 else ''})"
        if done_before:
            label += f", {done_before} reused"
        task = bar.add_task(label, total=total, completed=done_before)
        _run_specs(pending, runs_dir, workers, lambda s: bar.advance(task))


def load_runs(
    out_dir: str | Path, run_ids: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Return the summaries of the finished runs of a report directory.

    Args:
        out_dir: Report directory.
        run_ids: Restrict to these ids (default: ``runs.json`` if present, else all).
    """
    out = Path(out_dir)
    runs_dir = out / RUNS_DIR
    if run_ids is None:
        index = out / "runs.json"
        if index.is_file():
            run_ids = [str(r) for r in read_json(index)]
        elif runs_dir.is_dir():
            run_ids = sorted(
                p.name for p in runs_dir.iterdir() if not p.name.startswith(".")
            )
        else:
            run_ids = []
    out_list = []
    for rid in run_ids:
        s = load_summary(runs_dir / rid)
        if s is not None:
            out_list.append(s)
    return out_list
