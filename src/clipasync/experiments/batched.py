"""Grids run side by side: the runs that share an event sequence in one batched
event loop, each saved as its own run.

Runs batch when their method's registry entry says which hyperparameters shape
the event sequence (``MethodEntry.schedule``) and they agree in those, the seed,
the resolved problem, timing and availability; stop rules and evaluation cadences
may differ. Runs of different methods batch when their points are in one event
family (``MethodEntry.family``, :mod:`clipasync.policies.families`: asynchronous,
normalised and delay-adaptive SGD, Ringmaster and Rennala without cancellations).
A batch whose methods have vectorised server steps (``MethodEntry.columns``:
asynchronous and normalised SGD, Ringmaster, Rennala) runs in
:func:`clipasync.sim.columns.run_columns`, its evaluations due at one time in one
``evaluate_many`` call; any other in :func:`clipasync.sim.batched.run_batched`.

Each run's records are those of :func:`~clipasync.experiments.execute.execute` up
to the rounding of the batched products (gradients, norms, evaluations): event
columns (time, job, worker, version, delay, applied/discarded/skipped, compute
time) and counts are equal, floats agree to ~1e-12 relative. Those last bits can
depend on which runs share the batch (the BLAS blocking of the products), so a
batched run is reproducible from its experiment, and bit for bit from its own
config with ``batch_grid: false`` (or ``clipasync run --no-batch``), which runs
every configuration on its own exactly as before. A run's ``wall_time`` is its
share (1/K) of the batch's. A run that leaves the shared sequence (the batched
driver's safety net) is run on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, cast

from clipasync.errors import ConfigError
from clipasync.experiments.build import (
    LocalTraining,
    build_evaluate,
    build_policy,
    build_pool,
    build_problem,
    build_stop,
    build_timing,
)
from clipasync.experiments.execute import (
    RunOutcome,
    execute,
    federated_stats,
    keeping_last,
    pool_stats,
    summarise,
)
from clipasync.experiments.grid import RunSpec
from clipasync.policies.base import ServerPolicy
from clipasync.policies.registry import group_columns, lookup
from clipasync.problems.base import Problem
from clipasync.problems.many import (
    ManyTask,
    evaluate_rows,
    gradient_task,
    local_sgd_many,
)
from clipasync.recorder import Recorder
from clipasync.seeding import Stream, stream
from clipasync.sim.batched import BatchedTask, run_batched
from clipasync.sim.columns import SharedEvaluations, run_columns


def batch_key(spec: RunSpec) -> str | None:
    """Return the key runs must share to batch together, or ``None`` when the
    method's decisions may depend on its iterate (its entry has no ``schedule``).

    A point in an event family (``MethodEntry.family``) batches with the family's
    points of every method; any other with its own method's points equal in the
    ``schedule`` fields."""
    entry = lookup(spec.policy)
    family = None if entry.family is None else entry.family(spec.params)
    if family is not None:
        events: dict[str, Any] = {"family": family}
    elif entry.schedule is None:
        return None
    else:
        hyper = entry.to_hyper(spec.params)
        events = {
            "policy": spec.policy,
            "schedule": {k: hyper.get(k) for k in entry.schedule},
        }
    shared = {
        **events,
        "seed": spec.seed,
        "problem": spec.problem,
        "timing": spec.timing,
        "availability": spec.availability,
    }
    return json.dumps(shared, sort_keys=True, default=str)


def group_specs(specs: list[RunSpec], batch: bool = True) -> list[list[RunSpec]]:
    """Return the runs in batches (first-appearance order; one run each when
    ``batch`` is off or the method does not batch)."""
    if not batch:
        return [[s] for s in specs]
    groups: dict[str, list[RunSpec]] = {}
    out: list[list[RunSpec]] = []
    for s in specs:
        key = batch_key(s)
        if key is None:
            out.append([s])
        elif key in groups:
            groups[key].append(s)
        else:
            groups[key] = [s]
            out.append(groups[key])
    return out


def many_task(
    policy: str,
    params: Sequence[Any],
    policies: Sequence[ServerPolicy[Any]],
    problem: Problem,
) -> ManyTask:
    """Return the batched job of a group of ``policy``'s grid points ``params``:
    one stochastic gradient per row, or for a federated method local SGD with each
    point's client settings.

    Raises:
        ConfigError: If the points of a federated group differ in ``local_steps``.
    """
    if not lookup(policy).federated:
        return gradient_task(problem)
    clients = [cast(LocalTraining, p) for p in params]
    steps = {c.local_steps for c in clients}
    if len(steps) != 1:
        raise ConfigError(
            f"a batch of federated runs needs one local_steps, got {sorted(steps)}"
        )
    return local_sgd_many(
        problem,
        steps.pop(),
        [c.local_stepsize for c in clients],
        [c.client_max_norm for c in clients],
        output=cast(Any, policies[0]).payload,
    )


def execute_group(specs: list[RunSpec]) -> list[RunOutcome]:
    """Run a group of :func:`group_specs` and summarise each run (in order)."""
    if len(specs) == 1:
        return [execute(specs[0])]
    first = specs[0]
    problem = build_problem(first.problem)
    policies = [build_policy(s.policy, s.params) for s in specs]
    job = many_task(first.policy, [s.params for s in specs], policies, problem)
    task = BatchedTask(job, len(specs))
    pool = build_pool(
        build_timing(first.timing),
        task,
        first.seed,
        first.availability,
        first.timing.get("tie_break", "start"),
    )
    recorders = [Recorder(keep_arrivals=True) for _ in specs]
    stats: dict[int, dict[str, Any]] = {}
    stops = [build_stop(s.stop) for s in specs]
    every = [s.eval_every for s in specs]
    step = group_columns([s.policy for s in specs], [s.params for s in specs])
    shared = None
    if step is not None:
        shared = SharedEvaluations(
            problem.evaluate, lambda xs: evaluate_rows(problem, xs)
        )
        evaluates = [
            build_evaluate(problem, shared.for_row(j)) for j in range(len(specs))
        ]
    else:
        evaluates = [build_evaluate(problem) for _ in specs]
    # Each run's last evaluated iterate, as execute() keeps it (weights.pt).
    last: list[Any] = [None] * len(specs)
    evaluates = [keeping_last(last, j, ev) for j, ev in enumerate(evaluates)]
    t0 = time.perf_counter()
    try:
        if step is not None:
            batch = run_columns(
                step,
                pool,
                task,
                problem.initial_point(),
                stops=stops,
                rng=stream(first.seed, Stream.POLICY),
                evaluates=evaluates,
                eval_every=every,
                recorders=recorders,
                on_leave=lambda j: stats.__setitem__(j, pool_stats(pool)),
                shared=shared,
            )
        else:
            batch = run_batched(
                policies,
                pool,
                task,
                problem.initial_point(),
                stops=stops,
                rngs=[stream(s.seed, Stream.POLICY) for s in specs],
                evaluates=evaluates,
                eval_every=every,
                recorders=recorders,
                on_leave=lambda j: stats.__setitem__(j, pool_stats(pool)),
            )
    finally:
        pool.close()
    share = (time.perf_counter() - t0) / len(specs)
    outcomes = []
    for j, (spec, result) in enumerate(zip(specs, batch.results, strict=True)):
        if result is None:  # left the shared event sequence: run it alone
            outcomes.append(execute(spec))
            continue
        outcome = summarise(spec, result, recorders[j], share)
        outcome.evaluated = last[j]
        outcome.summary.update(stats[j])
        outcome.summary.update(federated_stats(outcome.arrivals))
        outcomes.append(outcome)
    return outcomes
