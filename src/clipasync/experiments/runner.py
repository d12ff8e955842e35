"""Expand an experiment config into runs, execute them, and store each one atomically.

The grid is sweep point × method × grid point × seed. Each :class:`RunSpec` is plain
data with a stable ``run_id`` (a readable slug plus a short hash of its resolved
settings), so a rerun into the same output directory finds the runs that already
finished and skips them::

    out/
      config.resolved.yaml   the expanded config (written first)
      runs.json              the run ids of this config, in grid order
      runs/<run_id>/         summary.json, evals.csv, arrivals.csv.gz (gzip-compressed
                             CSV; runs of older versions have arrivals.csv) (atomic
                             rename), final_x.npy (last iterate; only with
                             diagnostics "final")
      diagnostics.json       tail indices of the gradient noise (clipasync.experiments.diagnose)
      summary.csv, report.md, *.png   (clipasync.reports.report)

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
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import yaml

from clipasync.engine import RunResult, StopRule, Target, WorkerPool, run
from clipasync.errors import ConfigError
from clipasync.experiments.config import ExperimentConfig
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
from clipasync.policies.fedasync import FedAsync
from clipasync.policies.fedbuff import FedBuff
from clipasync.policies.rennala import Rennala, SyncMinibatch
from clipasync.policies.ringmaster import Ringmaster
from clipasync.problems.base import Problem
from clipasync.recorder import Recorder
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.sim.availability import (
    OpenSystemPool,
    UnreliablePool,
    make_dropout,
)
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
from clipasync.types import Task

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
    availability: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        """Return every field but ``run_id`` (what the id's hash covers).

        ``availability`` is left out when ``None``, so run ids of experiments
        without an ``availability`` block are those of earlier versions.
        """
        d = asdict(self)
        d.pop("run_id")
        if d.get("availability") is None:
            d.pop("availability", None)
        return d


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_HYPER_TAGS = {
    "stepsize": "g",
    "max_norm": "c",
    "max_delay": "R",
    "batch_size": "B",
    "buffer_size": "K",
    "mixing": "a",
    "local_stepsize": "el",
    "client_max_norm": "cc",
}


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
                    if cfg.availability is not None:
                        settings["availability"] = cfg.availability.model_dump(
                            mode="json", exclude_none=True
                        )
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
    ``adaptive_clip`` set: ``chain(adaptive_clip(...), scale(γ))`` (a learned c);
    ``delay_adaptive``: ``scale_by_delay(γ)`` (γ·min(1, n/delay)); else ``scale(γ)``.
    """
    gamma = float(hyper["stepsize"])
    step = scale_by_delay(gamma) if hyper.get("delay_adaptive") else scale(gamma)
    adaptive = hyper.get("adaptive_clip")
    if adaptive is not None:
        # A learned max_norm (beyond the paper): clipasync.transforms.adaptive.
        from clipasync.transforms.adaptive import adaptive_clip

        return chain(adaptive_clip(**adaptive), step)
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
    if policy in ("fedbuff", "fedasync"):
        return cast("ServerPolicy[Any]", build_federated_policy(policy, hyper))
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
        "minibatch, fedbuff, fedasync"
    )


def build_federated_policy(policy: str, hyper: dict[str, Any]) -> FedBuff | FedAsync:
    """Return FedBuff or FedAsync at one grid point.

    FedBuff's server transform is ``build_transform(hyper)`` (``stepsize`` = η_g,
    optional server ``max_norm``) with ``momentum(server_momentum)`` before the
    stepsize when set. The client side (local steps, client clipping) is the task,
    :func:`build_task`.

    Raises:
        ConfigError: On an invalid hyperparameter.
    """
    from clipasync.policies.staleness import make_staleness

    staleness = make_staleness(hyper.get("staleness"))
    assign = hyper.get("assign", "same")
    if policy == "fedasync":
        return FedAsync(float(hyper["mixing"]), staleness, assign)
    t = build_transform(hyper)
    beta = hyper.get("server_momentum")
    if beta is not None:
        from clipasync.transforms.momentum import momentum

        # clip (if any) → momentum → η_g: the server's pseudo-gradient is clipped
        # before it enters the momentum buffer.
        step = build_transform({**hyper, "max_norm": None, "adaptive_clip": None})
        t = chain(momentum(float(beta)), step)
        if hyper.get("max_norm") is not None or hyper.get("adaptive_clip"):
            clip = build_transform({**hyper, "stepsize": 1.0})
            t = chain(clip, t)
    max_staleness = hyper.get("max_staleness")
    return FedBuff(
        int(hyper["buffer_size"]),
        t,
        staleness,
        None if max_staleness is None else int(max_staleness),
        assign,
    )


def build_task(
    policy: ServerPolicy[Any], problem: Problem, hyper: dict[str, Any]
) -> Task:
    """Return the job a worker runs: one stochastic gradient, or local training.

    For a policy with a ``payload`` (FedBuff: ``"delta"``, FedAsync: ``"model"``)
    the job is :func:`clipasync.problems.local_training.local_sgd_task` with the grid point's
    ``local_steps``, ``local_stepsize`` and ``client_max_norm``.
    """
    payload = getattr(policy, "payload", None)
    if payload is None:
        return lambda w, x, rng: problem.stochastic_grad(x, rng, w)
    from clipasync.problems.local_training import local_sgd_task

    c = hyper.get("client_max_norm")
    return local_sgd_task(
        problem,
        int(hyper.get("local_steps", 1)),
        float(hyper["local_stepsize"]),
        None if c is None else float(c),
        output=payload,
    )


def build_pool(
    timing: ComputeTimeModel,
    task: Task,
    seed: int,
    availability: dict[str, Any] | None,
) -> WorkerPool:
    """Return the simulated pool: plain, with dropout, or an open system.

    ``availability`` is the resolved ``availability`` block: ``dropout`` alone wraps
    the :class:`~clipasync.sim.SimulatedPool` in an
    :class:`~clipasync.sim.UnreliablePool` (lost jobs are retried);
    ``open_system`` builds an :class:`~clipasync.sim.OpenSystemPool` (with the
    dropout, if any; lost jobs are not retried).
    """
    if not availability:
        return SimulatedPool(timing, task, seed)
    spec = availability.get("dropout")
    dropout = make_dropout(spec) if spec is not None else None
    open_system = availability.get("open_system")
    if open_system is not None:
        return OpenSystemPool(
            timing, float(open_system["rate"]), task, seed, dropout=dropout
        )
    inner = SimulatedPool(timing, task, seed)
    return inner if dropout is None else UnreliablePool(inner, dropout, seed)


def pool_stats(pool: WorkerPool) -> dict[str, Any]:
    """Availability counters of a pool (empty for a plain simulated pool).

    ``lost_jobs``, ``lost_compute_time`` and ``lost_by_worker`` (dropout), and for
    an open system ``started_jobs`` and ``mean_concurrency`` (time average of the
    jobs in flight, λ·E[τ] by Little's law).
    """
    out: dict[str, Any] = {}
    if isinstance(pool, UnreliablePool | OpenSystemPool):
        out["lost_jobs"] = int(pool.lost_jobs)
        out["lost_compute_time"] = float(pool.lost_compute_time)
        out["lost_by_worker"] = [int(v) for v in pool.lost_by_worker]
    if isinstance(pool, OpenSystemPool):
        out["started_jobs"] = int(pool.started_jobs)
        out["mean_concurrency"] = float(pool.mean_concurrency())
    return out


def federated_stats(arr: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    """Client-side summaries of a federated run's arrival columns (empty otherwise).

    ``mean_delta_norm`` (norm of the client deltas as received, i.e. after client
    clipping) and ``mean_staleness_weight``.
    """
    out: dict[str, Any] = {}
    if "delta_norm" in arr:
        out["mean_delta_norm"] = _nanmean(arr["delta_norm"])
    if "staleness_weight" in arr:
        out["mean_staleness_weight"] = _nanmean(arr["staleness_weight"])
    return out


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
# Set in worker processes (pool initializer): torch then gets one thread per process.
_ONE_THREAD = False


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
        if _ONE_THREAD and "torch" in sys.modules:
            # threadpoolctl does not reach torch's intra-op pool; several processes
            # with one torch thread per core each oversubscribe a small machine.
            sys.modules["torch"].set_num_threads(1)
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
    params: np.ndarray[Any, Any] | None = field(default=None, repr=False)


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
    task = build_task(policy, problem, spec.hyper)
    pool = build_pool(timing, task, spec.seed, spec.availability)
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
    outcome = summarise(spec, result, recorder, wall)
    outcome.summary.update(pool_stats(pool))
    outcome.summary.update(federated_stats(outcome.arrivals))
    return outcome


def summarise(
    spec: RunSpec, result: RunResult, recorder: Recorder, wall: float
) -> RunOutcome:
    """Turn a finished run into its :class:`RunOutcome` (any pool: sim or Ray)."""
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
    return RunOutcome(summary, arr, recorder.evals, result.params)


FINAL_POINT_FILE = "final_x.npy"
#: A run's per-arrival record: a gzip-compressed CSV (``pandas.read_csv`` reads it).
ARRIVALS_FILE = "arrivals.csv.gz"
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
) -> Path:
    """Write a run as ``runs_dir/<run_id>/`` atomically (temp dir, then rename).

    With ``save_final`` the last iterate is kept as ``final_x.npy`` (for
    diagnostics measured at the end of a run).
    """
    dest = runs_dir / str(outcome.summary["run_id"])
    with atomic_dir(dest) as tmp:
        if save_final and outcome.params is not None:
            np.save(tmp / FINAL_POINT_FILE, np.asarray(outcome.params))
        if record_arrivals:
            write_csv_atomic(tmp / ARRIVALS_FILE, outcome.arrivals)
        write_rows_csv_atomic(
            tmp / "evals.csv", outcome.evals, columns=("time", "version")
        )
        # Written last: its presence marks a complete run, even without the rename.
        write_json_atomic(tmp / SUMMARY_FILE, outcome.summary)
    return dest


def execute_and_save(
    spec: RunSpec, runs_dir: str, save_final: bool = False
) -> dict[str, Any]:
    """Execute a spec and store it; return its summary (the unit of parallel work)."""
    outcome = execute(spec)
    save_run(outcome, Path(runs_dir), spec.record_arrivals, save_final)
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
        pass
    else:
        threadpool_limits(1)
    global _ONE_THREAD
    _ONE_THREAD = True  # torch (imported later, by a problem) gets 1 thread too


def _run_specs(
    specs: list[RunSpec],
    runs_dir: Path,
    workers: int,
    on_done: Callable[[dict[str, Any]], None],
    save_final: bool = False,
) -> None:
    if workers <= 1:
        for spec in specs:
            on_done(execute_and_save(spec, str(runs_dir), save_final))
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
        futures = [
            pool.submit(execute_and_save, s, str(runs_dir), save_final) for s in specs
        ]
        try:
            for fut in cf.as_completed(futures):
                on_done(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def prepare_out_dir(config: ExperimentConfig, out: Path) -> tuple[Path, list[RunSpec]]:
    """Create ``out/runs``, clear leftovers of killed runs, write the resolved config
    and the run index; return the runs directory and the expanded specs."""
    runs_dir = out / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(runs_dir)
    specs = expand(config)
    write_text_atomic(
        out / "config.resolved.yaml",
        yaml.safe_dump(config.resolved(), sort_keys=False, default_flow_style=None),
    )
    write_json_atomic(out / "runs.json", [s.run_id for s in specs])
    return runs_dir, specs


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
    leftovers of killed runs are removed and redone. With a ``diagnostics`` block the
    tail indices are measured after the grid (:mod:`clipasync.experiments.diagnose`, cached in
    ``diagnostics.json``).

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
    runs_dir, specs = prepare_out_dir(config, out)
    pending = [s for s in specs if load_summary(runs_dir / s.run_id) is None]
    n_workers = resolve_workers(
        workers if workers is not None else config.workers, len(pending)
    )
    tail = config.diagnostics.tail_index if config.diagnostics else None
    save_final = tail is not None and "final" in tail.at
    _execute_with_progress(
        pending, runs_dir, n_workers, len(specs), progress, save_final
    )
    if tail is not None:
        from clipasync.experiments.diagnose import tail_index_diagnostics

        tail_index_diagnostics(config, out)
    if report:
        from clipasync.reports.report import build_report

        build_report(out)
    return out


def _execute_with_progress(
    pending: list[RunSpec],
    runs_dir: Path,
    workers: int,
    total: int,
    progress: bool,
    save_final: bool = False,
) -> None:
    done_before = total - len(pending)
    if not progress:
        _run_specs(pending, runs_dir, workers, lambda s: None, save_final)
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
        _run_specs(pending, runs_dir, workers, lambda s: bar.advance(task), save_final)


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
