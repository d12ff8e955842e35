"""Config data → library objects: the policy, task, pool, timing, problem and stop
rule of a run.

The server policy of a grid point comes from its registry entry
(:mod:`clipasync.policies.registry`); a worker's job is one stochastic gradient, or
for a federated method local SGD on the client's shard
(:func:`~clipasync.problems.local_training.local_sgd_task`). Every random stream of a
run comes from its one seed (:mod:`clipasync.seeding`); the problem's data come from
the problem's own ``seed`` keyword, so all runs of an experiment optimise the same
objective and a worker process builds it once.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Protocol, cast

from clipasync.engine import StopRule, Target, WorkerPool
from clipasync.errors import ConfigError
from clipasync.policies.base import ServerPolicy
from clipasync.policies.registry import lookup
from clipasync.problems import make_problem
from clipasync.problems.base import Problem
from clipasync.problems.local_training import local_sgd_task
from clipasync.problems.metrics import Evaluate, running_gradient_metrics
from clipasync.sim import SimulatedPool
from clipasync.sim.availability import OpenSystemPool, UnreliablePool, make_dropout
from clipasync.sim.pool import TieBreak
from clipasync.timing import (
    ComputeTimeModel,
    FixedTimes,
    TraceTimes,
    random_times,
    sqrt_times,
    two_speed,
)
from clipasync.types import Task


class LocalTraining(Protocol):
    """The client side of a federated method's parameters."""

    @property
    def local_steps(self) -> int: ...

    @property
    def local_stepsize(self) -> float: ...

    @property
    def client_max_norm(self) -> float | None: ...


def build_policy(policy: str, params: Any) -> ServerPolicy[Any]:
    """Return the server policy of a grid point (``params`` of ``policy``'s class).

    Raises:
        ConfigError: On an unknown policy.
    """
    return lookup(policy).build(params)


def build_task(
    policy: str, params: Any, server: ServerPolicy[Any], problem: Problem
) -> Task:
    """Return the job a worker runs: one stochastic gradient, or local training.

    For a federated method (its registry entry says so) the job is
    :func:`~clipasync.problems.local_training.local_sgd_task` with the grid point's
    ``local_steps``, ``local_stepsize`` and ``client_max_norm``, returning what the
    server consumes (``server.payload``: FedBuff a delta, FedAsync a model).
    """
    if not lookup(policy).federated:
        return lambda w, x, rng: problem.stochastic_grad(x, rng, w)
    client = cast(LocalTraining, params)
    return local_sgd_task(
        problem,
        client.local_steps,
        client.local_stepsize,
        client.client_max_norm,
        output=cast(Any, server).payload,
    )


def build_pool(
    timing: ComputeTimeModel,
    task: Task,
    seed: int,
    availability: dict[str, Any] | None,
    tie_break: TieBreak = "start",
) -> WorkerPool:
    """Return the simulated pool: plain, with dropout, or an open system.

    ``tie_break`` orders simultaneous finishes (the timing block's ``tie_break``);
    an open system draws its own job starts and keeps start order.

    ``availability`` is the resolved ``availability`` block: ``dropout`` alone wraps
    the :class:`~clipasync.sim.SimulatedPool` in an
    :class:`~clipasync.sim.UnreliablePool` (lost jobs are retried);
    ``open_system`` builds an :class:`~clipasync.sim.OpenSystemPool` (with the
    dropout, if any; lost jobs are not retried).
    """
    if not availability:
        return SimulatedPool(timing, task, seed, tie_break)
    spec = availability.get("dropout")
    dropout = make_dropout(spec) if spec is not None else None
    open_system = availability.get("open_system")
    if open_system is not None:
        if tie_break != "start":
            raise ConfigError(
                "config error at timing.tie_break: an open system keeps start order"
            )
        return OpenSystemPool(
            timing, float(open_system["rate"]), task, seed, dropout=dropout
        )
    inner = SimulatedPool(timing, task, seed, tie_break)
    return inner if dropout is None else UnreliablePool(inner, dropout, seed)


def build_timing(timing: dict[str, Any]) -> ComputeTimeModel:
    """Return the compute-time model of a resolved timing config.

    Raises:
        ConfigError: On an unknown kind or invalid parameters.
    """
    p = dict(timing)
    kind = p.pop("kind")
    p.pop("tie_break", None)  # the simulator's, not the model's (build_pool)
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


def one_torch_thread() -> None:
    """Give torch one thread in this process once a problem imports it (workers)."""
    global _ONE_THREAD
    _ONE_THREAD = True


def _construct_problem(cfg: dict[str, Any]) -> Problem:
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


def check_user_problems(problems: list[dict[str, Any]]) -> None:
    """Build each distinct user problem (``factory`` or ``torch``) once, now.

    Called before the output directory is created, so a bad import path, a
    missing data file or a model that does not fit its loss is one error line and
    leaves nothing behind; the problems stay in this process's cache, so an
    in-process run does not build them again.

    Raises:
        ConfigError: The first problem that cannot be built.
    """
    seen: set[str] = set()
    for cfg in problems:
        key = json.dumps(cfg, sort_keys=True, default=str)
        if cfg.get("name") in ("factory", "torch") and key not in seen:
            seen.add(key)
            build_problem(cfg)


def ray_runtime_env(
    problems: list[dict[str, Any]], out_dir: Path, address: str | None
) -> dict[str, Any] | None:
    """Return the Ray ``runtime_env`` that ships a user problem's folder, or ``None``.

    On a cluster (``address`` set) the nodes need not share the config's folder
    (``root``: the user's modules and relative data files), so it becomes the
    job's ``working_dir``: Ray uploads it once (files listed in its
    ``.gitignore`` are skipped; Ray caps the upload, 512 MiB by default) and every
    actor starts in its copy, with it on ``sys.path``. The output directory is
    excluded when it lies inside. A local Ray shares this machine's files, so it
    needs nothing (``root`` is put on ``sys.path`` by the problem's builder).
    """
    roots = {str(p["root"]) for p in problems if p.get("root")}
    if address is None or not roots:
        return None
    if len(roots) > 1:
        raise ConfigError(
            "problem.root: one folder per experiment on a Ray cluster, got "
            f"{sorted(roots)}"
        )
    root = Path(roots.pop())
    excludes = [".git"]
    with contextlib.suppress(ValueError):
        excludes.append(str(out_dir.resolve().relative_to(root.resolve())) + "/")
    return {"working_dir": str(root), "excludes": excludes}


_REPORTS_GRADIENT: dict[int, bool] = {}


def build_evaluate(problem: Problem, inner: Evaluate | None = None) -> Evaluate:
    """Return the run's evaluation: the problem's metrics, plus the running mean and
    minimum of ‖∇f(x)‖² over the evaluations (the stationarity measure of the
    nonconvex guarantee, arXiv 2606.13287, Thm 4.2) when the problem reports a
    gradient norm. A fresh wrapper per run: its averages start empty. ``inner``
    computes the problem's metrics instead of ``problem.evaluate`` (a batched run's
    shared evaluations)."""
    known = _REPORTS_GRADIENT.get(id(problem))
    if known is None:
        metrics = problem.evaluate(problem.initial_point())
        known = _REPORTS_GRADIENT[id(problem)] = bool(
            {"grad_norm", "grad_norm_sq"} & set(metrics)
        )
    base = problem.evaluate if inner is None else inner
    return running_gradient_metrics(base) if known else base


def build_stop(stop: dict[str, Any]) -> StopRule:
    """Return the engine's stop rule of a resolved stop config."""
    target = stop.get("target")
    return StopRule(
        max_time=stop.get("max_time"),
        max_updates=stop.get("max_updates"),
        max_arrivals=stop.get("max_arrivals"),
        target=Target(
            target["metric"],
            float(target["value"]),
            int(target.get("confirm") or 1),
            target.get("direction"),
        )
        if target
        else None,
        diverge_factor=float(stop.get("diverge_factor", 1e6)),
    )
