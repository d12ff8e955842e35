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

import json
import sys
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
            target["metric"], float(target["value"]), int(target.get("confirm") or 1)
        )
        if target
        else None,
        diverge_factor=float(stop.get("diverge_factor", 1e6)),
    )
