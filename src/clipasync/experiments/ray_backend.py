"""Run an experiment's grid on Ray instead of the simulator (``--backend ray``).

The same YAML drives both backends and the same policy objects run in the driver:
only the pool changes, from :class:`~clipasync.sim.SimulatedPool` (virtual clock) to
:class:`~clipasync.runtime.ray_pool.RayPool` (wall clock). Conventions:

* Time. The config's times are in *time units*; on Ray one time unit is
  ``time_unit_s`` seconds. Each job sleeps by the config's compute-time model scaled
  by ``time_unit_s`` on top of its real compute (``inject_delays=False`` turns the
  sleep off: the real stragglers of the cluster only). The pool's clock is in time
  units (:class:`RayPool` ``time_unit_s``), so ``max_time``, ``eval_every``, the
  records and every time field of the summary (``final.time`` included) read in
  time units on both backends; the wall-clock seconds are separate fields
  (``wall_clock_time``, ``wall_time``, ``startup_s``; see :data:`TIME_FIELDS`).
* Runs execute one after another (each one already uses every worker of the
  cluster) and share their actors: a run resets the previous run's pool of the same
  size (new task, seed and streams) instead of starting processes; each finished
  run is written atomically like a simulated run, so a rerun skips finished runs.
  A ``protocol`` block runs its stages (tune, refine, eval) as on the simulator
  (:mod:`clipasync.experiments.protocol`).
* Each run checkpoints its driver every ``checkpoint_every`` updates to
  ``checkpoints/<run_id>/``; :func:`resume_experiment` (``clipasync resume DIR``)
  continues every unfinished run from its checkpoint, or from scratch if it has none.
* PyTorch problems also save their final weights as ``runs/<run_id>/weights.pt``
  (a ``state_dict``; ``torch.load(path, weights_only=True)``).

Command line: ``clipasync run CONFIG --backend ray [--address HOST:PORT]``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from clipasync.checkpoint import has_checkpoint, load_checkpoint, save_state_dict
from clipasync.engine import Target
from clipasync.errors import ConfigError
from clipasync.experiments.build import (
    build_policy,
    build_problem,
    build_stop,
    build_task,
    build_timing,
    ray_runtime_env,
)
from clipasync.experiments.execute import RunOutcome, summarise
from clipasync.experiments.grid import RunSpec, expand
from clipasync.experiments.loading import load_config, saved_root
from clipasync.experiments.outlock import lock_out_dir
from clipasync.experiments.protocol import run_protocol
from clipasync.experiments.ray_settings import read_backend_settings
from clipasync.experiments.records import check_summary
from clipasync.experiments.rundir import (
    ARRIVALS_FILE,
    RUNS_DIR,
    arrivals_path,
    load_summary,
    prepare_out_dir,
    save_run,
)
from clipasync.experiments.schema import ExperimentConfig
from clipasync.io import inside, read_columns, write_json_atomic, write_text_atomic
from clipasync.policies.registry import lookup
from clipasync.recorder import Recorder
from clipasync.runtime.driver import checkpoint_streams, run_resumable
from clipasync.runtime.ray_pool import RayPool, start_ray
from clipasync.runtime.trace import compare_sim_to_real, plot_sim_vs_real, write_trace
from clipasync.seeding import Stream, stream

CHECKPOINTS_DIR = "checkpoints"
BACKEND_FILE = "backend.json"
SOURCE_FILE = "config.source.yaml"


@dataclasses.dataclass(frozen=True)
class ConfiguredTask:
    """Picklable task factory: builds the run's problem inside each Ray actor.

    Building the problem in the actor (from its config, a few bytes) keeps data sets
    off the wire; every actor builds the same objective from the problem's seed.
    """

    problem: dict[str, Any]
    policy: str
    params: Any

    def __call__(self) -> Any:
        # The same job as in the simulator: one stochastic gradient, or a client's
        # local training for federated policies (build.build_task).
        problem = build_problem(self.problem)
        server = build_policy(self.policy, self.params)
        return build_task(self.policy, self.params, server, problem)


#: The unit of every time field of a Ray run's summary (the simulator's read alike:
#: time units; only the fields named here in seconds are wall-clock seconds).
TIME_FIELDS = {
    "sim_time": "time units",
    "time_to_target": "time units",
    "first_hit": "time units",
    "robust_hit": "time units",
    "censor_time": "time units",
    "initial.time": "time units",
    "final.time": "time units",
    "updates_per_time": "updates per time unit",
    "time_unit_s": "seconds per time unit",
    "wall_clock_time": "seconds (sim_time x time_unit_s: the run's own clock)",
    "wall_time": "seconds (the driver loop: evaluations and checkpoints included)",
    "startup_s": "seconds (until every actor was ready)",
}


def _add_wall_clock(outcome: RunOutcome, unit: float, startup_s: float) -> RunOutcome:
    """Add the wall-clock fields to a Ray run whose records are in time units (the
    pool's clock is in time units already: :class:`RayPool` ``time_unit_s``)."""
    s = outcome.summary
    s["time_unit_s"] = unit
    s["wall_clock_time"] = float(s["sim_time"]) * unit
    s["startup_s"] = startup_s
    s["time_fields"] = dict(TIME_FIELDS)
    arrivals = dict(outcome.arrivals)
    arrivals["wall_time"] = arrivals["time"] * unit
    return RunOutcome(
        s,
        arrivals,
        outcome.evals,
        outcome.params,
        outcome.cancellations,
        outcome.evaluated,
    )


def execute_on_ray(
    spec: RunSpec,
    out_dir: Path,
    *,
    time_unit_s: float,
    inject_delays: bool = True,
    checkpoint_every: int = 200,
    resume: bool = False,
    address: str | None = None,
    pools: dict[int, RayPool] | None = None,
) -> RunOutcome:
    """Run one spec on a Ray pool (checkpointed, resumable) and summarise it.

    ``pools`` (worker count → pool) lends the actors of earlier runs: a run with
    as many workers resets that pool instead of starting processes, and leaves it
    open (the caller closes them); ``None``: a fresh pool, closed after the run.

    Raises:
        ConfigError: For an ``availability`` block (client dropout and open systems
            are simulator models; on Ray the real failures are the dropouts).
    """
    if spec.availability:
        raise ConfigError(
            "availability (simulated dropout / open system) runs on the simulator "
            "only; on Ray, real worker failures are detected and counted"
        )
    problem = build_problem(spec.problem)
    timing = build_timing(spec.timing)
    policy = build_policy(spec.policy, spec.params)
    ckpt_dir = out_dir / CHECKPOINTS_DIR / spec.run_id
    streams = checkpoint_streams(ckpt_dir) if resume else None
    task = ConfiguredTask(spec.problem, spec.policy, spec.params)
    injected = timing if inject_delays else None
    pool = None if pools is None else pools.get(timing.num_workers)
    if pool is not None:  # the actors of an earlier run: no new processes
        pool.reset(task, timing=injected, seed=spec.seed, streams=streams)
    else:
        pool = RayPool(
            task,
            timing.num_workers,
            timing=injected,
            time_unit_s=time_unit_s,
            seed=spec.seed,
            address=address,
            streams=streams,
            in_place=True,  # bit-identical to the pure path (runtime.inplace)
        )
        if pools is not None:
            pools[timing.num_workers] = pool
    stop = build_stop(spec.stop)  # in time units, as the pool's clock
    recorder = Recorder(keep_arrivals=True)
    t0 = time.perf_counter()
    try:
        result = run_resumable(
            policy,
            pool,
            pool.model(problem.initial_point()),
            stop=stop,
            rng=stream(spec.seed, Stream.POLICY),
            evaluate=problem.evaluate,
            eval_every=spec.eval_every,
            checkpoint_dir=ckpt_dir,
            checkpoint_every=checkpoint_every,
            resume=resume and streams is not None,
            config={"run_id": spec.run_id},
            recorder=recorder,
        )
        failures = int(getattr(pool, "failures", 0))
    finally:
        if pools is None:
            pool.close()
    outcome = _add_wall_clock(
        summarise(spec, result, recorder, time.perf_counter() - t0),
        time_unit_s,
        pool.startup_s,
    )
    outcome.summary["backend"] = "ray"
    outcome.summary["worker_failures"] = failures
    outcome.summary["inject_delays"] = inject_delays
    return outcome


def _save_weights(spec: RunSpec, outcome: RunOutcome, run_dir: Path) -> None:
    from clipasync.problems.torch_adaptor import TorchProblem

    problem = build_problem(spec.problem)
    if isinstance(problem, TorchProblem) and outcome.params is not None:
        save_state_dict(problem.model, outcome.params, run_dir / "weights.pt")


def run_experiment_on_ray(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    address: str | None = None,
    time_unit_s: float = 0.05,
    inject_delays: bool = True,
    checkpoint_every: int = 200,
    num_cpus: int | None = None,
    resume: bool = False,
    source: tuple[str, list[str], str | None] | None = None,
) -> Path:
    """Run every spec of ``config`` on Ray into ``out_dir`` (the report is built apart,
    by :func:`clipasync.reports.report.build_report`, with :func:`sim_to_real_section`).

    Args:
        config: Validated experiment (the same file the simulator runs).
        out_dir: Report directory.
        address: Existing Ray cluster (``HOST:PORT``); ``None`` starts a local Ray.
        time_unit_s: Seconds per time unit of the config.
        inject_delays: Sleep per job by the config's compute-time model.
        checkpoint_every: Driver checkpoint period, in applied updates.
        num_cpus: CPUs of a local Ray (default: the machine's).
        resume: Continue unfinished runs from their checkpoints.
        source: ``(YAML text, --set overrides, profile)`` the config was loaded
            from, kept in the directory so that :func:`resume_experiment` can
            rebuild the same config (default: taken from an earlier call).
    """
    with lock_out_dir(out_dir) as out:
        return _run_on_ray_locked(
            config,
            out,
            address=address,
            time_unit_s=time_unit_s,
            inject_delays=inject_delays,
            checkpoint_every=checkpoint_every,
            num_cpus=num_cpus,
            resume=resume,
            source=source,
        )


def _run_on_ray_locked(
    config: ExperimentConfig,
    out: Path,
    *,
    address: str | None,
    time_unit_s: float,
    inject_delays: bool,
    checkpoint_every: int,
    num_cpus: int | None,
    resume: bool,
    source: tuple[str, list[str], str | None] | None,
) -> Path:
    # Join (or start) Ray first: a cluster that cannot be joined fails in seconds,
    # with one line (ray_session.check_cluster), before anything is written.
    problems = [s.problem for s in expand(config)]
    start_ray(address, num_cpus, ray_runtime_env(problems, out, address))
    runs_dir, specs = prepare_out_dir(config, out)
    if source is not None:
        write_text_atomic(out / SOURCE_FILE, source[0])
    write_json_atomic(
        out / BACKEND_FILE,
        {
            "overrides": list(source[1]) if source is not None else [],
            "profile": source[2] if source is not None else None,
            "backend": "ray",
            "address": address,
            "time_unit_s": time_unit_s,
            "inject_delays": inject_delays,
            "checkpoint_every": checkpoint_every,
        },
    )

    pools: dict[int, RayPool] = {}  # the runs share their actors (start-up once)

    def run_stage(stage: str | None, specs: list[RunSpec]) -> None:
        for spec in specs:
            if load_summary(runs_dir / spec.run_id) is not None:
                continue
            outcome = execute_on_ray(
                spec,
                out,
                time_unit_s=time_unit_s,
                inject_delays=inject_delays,
                checkpoint_every=checkpoint_every,
                resume=resume,
                address=address,
                pools=pools,
            )
            run_dir = save_run(outcome, runs_dir, spec.record_arrivals)
            _save_weights(spec, outcome, run_dir)

    try:
        if config.protocol is None:
            run_stage(None, specs)
        else:
            run_protocol(config, out, runs_dir, run_stage)
    finally:
        for pool in pools.values():
            pool.close()
    return out


def resume_experiment(out_dir: str | Path, address: str | None = None) -> Path:
    """Continue a Ray experiment after its driver was killed (``clipasync resume``).

    Finished runs are kept; each unfinished run continues from its last checkpoint
    (or starts over if it had none), with the settings the experiment started with.
    """
    out = Path(out_dir)
    settings_path = out / BACKEND_FILE
    if not settings_path.is_file():
        raise ConfigError(
            f"{out} is not a Ray experiment directory (no {BACKEND_FILE}); "
            "a simulated experiment resumes by rerunning `clipasync run` with --out"
        )
    settings = read_backend_settings(settings_path)
    if not (out / SOURCE_FILE).is_file():
        raise ConfigError(
            f"{out} has no {SOURCE_FILE}: it was started without its source config "
            "(pass source= to run_experiment_on_ray, as `clipasync run` does)"
        )
    config = load_config(
        out / SOURCE_FILE,
        list(settings.get("overrides", [])),
        profile=settings.get("profile"),
        root=saved_root(out),
    )
    for spec in expand(config):  # every checkpoint is read (and checked) up front
        ckpt_dir = inside(out, f"{CHECKPOINTS_DIR}/{spec.run_id}", "checkpoint")
        if load_summary(out / RUNS_DIR / spec.run_id) is None and has_checkpoint(
            ckpt_dir
        ):
            load_checkpoint(ckpt_dir)
    return run_experiment_on_ray(
        config,
        out,
        address=address if address is not None else settings.get("address"),
        time_unit_s=float(settings["time_unit_s"]),
        inject_delays=bool(settings["inject_delays"]),
        checkpoint_every=int(settings["checkpoint_every"]),
        resume=True,
    )


def export_trace(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write a run's measured compute times as a trace the simulator replays, and
    compare simulated with measured update rate and delays (``clipasync trace``).

    Args:
        run_dir: ``<experiment>/runs/<run_id>`` of a Ray run.
        out: Trace CSV path (default ``run_dir/trace.csv``).

    Returns:
        The comparison as plain data (also written to ``run_dir/sim_vs_real.json``
        with a plot ``run_dir/sim_vs_real.png``).
    """
    run = Path(run_dir)
    summary = load_summary(run)
    arrivals = arrivals_path(run)
    if summary is None or arrivals is None:
        raise ConfigError(f"{run} is not a finished run with {ARRIVALS_FILE}")
    summary = check_summary(summary, run / "summary.json")
    columns = read_columns(
        arrivals, require=("job", "worker", "time", "compute_time", "applied", "delay")
    )
    try:
        spec_timing = build_timing(summary["timing"])
        policy = build_policy(
            summary["policy"], lookup(summary["policy"]).from_hyper(summary["hyper"])
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(
            f"{run}/summary.json: no timing, policy or hyper a run writes ({exc!s:.60})"
        ) from None
    trace_path = Path(out) if out is not None else run / "trace.csv"
    # Times in the records are already in time units (RayPool time_unit_s).
    write_trace(columns, trace_path, 1.0)
    cmp = compare_sim_to_real(columns, spec_timing, 1.0, policy=policy)
    data = {
        "run_id": summary["run_id"],
        "measured_rate": cmp.measured_rate,
        "simulated_rate": cmp.simulated_rate,
        "rate_ratio": cmp.rate_ratio,
        "delay_quantiles_sim_vs_measured": cmp.quantiles,
        "delay_wasserstein": cmp.wasserstein,
    }
    write_json_atomic(run / "sim_vs_real.json", data)
    plot_sim_vs_real(cmp, run / "sim_vs_real.png")
    return {"trace": str(trace_path), **data}


def sim_to_real_section(out_dir: str | Path) -> str:
    """Markdown comparing each Ray run's measured update rate and delays with the
    simulator's prediction for the same timing model and policy."""
    out = Path(out_dir)
    rows = []
    for run in sorted((out / RUNS_DIR).iterdir()):
        summary = load_summary(run)
        if summary is None or arrivals_path(run) is None:
            continue
        d = export_trace(run)
        q = d["delay_quantiles_sim_vs_measured"]
        startup = summary.get("startup_s")
        start = "—" if startup is None else f"{float(startup):.1f}"
        rows.append(
            f"| {d['run_id']} | {d['measured_rate']:.3g} | {d['simulated_rate']:.3g} "
            f"| {d['rate_ratio']:.2f} | {q['p50'][1]:.0f} / {q['p50'][0]:.0f} "
            f"| {q['p90'][1]:.0f} / {q['p90'][0]:.0f} | {d['delay_wasserstein']:.2f} "
            f"| {start} |"
        )
    head = [
        "## Sim-to-real check",
        "",
        "Each run's measured update rate (updates per time unit) and delays next to",
        "the simulator's prediction for the same timing model and policy. A rate",
        "ratio below 1 is the runtime's overhead; `clipasync trace RUN` writes the",
        "measured compute times as a trace the simulator replays (`trace.csv`).",
        "Start-up: wall-clock seconds until every worker actor was ready (not part",
        "of the run's time).",
        "",
        "| run | measured rate | simulated rate | ratio | delay p50 measured / sim "
        "| delay p90 measured / sim | delay W1 | start-up (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + rows) + "\n"


__all__ = [
    "ConfiguredTask",
    "Target",
    "execute_on_ray",
    "export_trace",
    "resume_experiment",
    "run_experiment_on_ray",
]
