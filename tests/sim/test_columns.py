"""The vectorised batched loop (:mod:`clipasync.sim.columns`) gives every
configuration its one-configuration run: event records exact, iterates, metrics and
norms within ``rtol = 1e-12 · T`` (the bound of :mod:`tests.sim.test_batched`),
for vanilla, clipped, delay-adaptive and normalised SGD and Ringmaster, both job
assignments,
per-configuration stops, skipped non-finite gradients and zero gradients."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, run
from clipasync.policies.columns import (
    ColumnUpdate,
    async_columns,
    normalized_columns,
)
from clipasync.policies.params import (
    AsyncSGDParams,
    NormalizedSGDParams,
    RingmasterParams,
)
from clipasync.policies.registry import lookup
from clipasync.problems import LeastSquares
from clipasync.problems.many import gradient_task
from clipasync.recorder import Recorder
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.sim.batched import BatchedTask
from clipasync.sim.columns import run_columns
from clipasync.transforms.chains import AdaptiveClip
from tests.sim.test_batched import NUM_WORKERS, PROBLEM, SEED, TIMING, assert_same_run


def _solo(
    policy: str, params: Any, stop: StopRule, problem: Any, every: Any
) -> RunResult:
    entry = lookup(policy)
    pool = SimulatedPool(
        TIMING, lambda w, x, rng: problem.stochastic_grad(x, rng, w), SEED
    )
    return run(
        entry.build(params),
        pool,
        problem.initial_point(),
        stop=stop,
        rng=stream(SEED, Stream.POLICY),
        evaluate=None if every is None else problem.evaluate,
        eval_every=every,
        recorder=Recorder(),
    )


def _columns(
    policy: str, grid: list[Any], stops: list[StopRule], problem: Any, every: Any
) -> list[RunResult | None]:
    step = lookup(policy).columns(grid)  # type: ignore[misc]
    assert step is not None
    return run_step(step, stops, problem, every)


def run_step(
    step: ColumnUpdate, stops: list[StopRule], problem: Any, every: Any
) -> list[RunResult | None]:
    """Run the configurations of ``step`` in one batched loop."""
    k = step.num_columns
    task = BatchedTask(gradient_task(problem), k)
    out = run_columns(
        step,
        SimulatedPool(TIMING, task, SEED),
        task,
        problem.initial_point(),
        stops=stops,
        rng=stream(SEED, Stream.POLICY),
        evaluates=[None if every is None else problem.evaluate] * k,
        eval_every=[every] * k,
    )
    return out.results


def _check(
    policy: str,
    grid: list[Any],
    stops: list[StopRule],
    problem: Any = PROBLEM,
    every: Any = 2.0,
) -> list[RunResult]:
    solos = []
    for params, stop, got in zip(
        grid, stops, _columns(policy, grid, stops, problem, every), strict=True
    ):
        solo = _solo(policy, params, stop, problem, every)
        assert got is not None
        assert_same_run(solo, got, rtol=1e-12 * max(solo.counts["arrivals"], 1))
        solos.append(solo)
    return solos


@pytest.mark.parametrize("assign", ["same", "random"])
def test_async_grid_equals_its_one_configuration_runs(assign: str) -> None:
    grid = [
        AsyncSGDParams(stepsize=g, max_norm=c, delay_adaptive=da, assign=assign)  # type: ignore[arg-type]
        for g in (0.05, 0.2)
        for c in (None, 1.0, 0.05)
        for da in (False, True)
    ]
    stops = [StopRule(max_arrivals=20 + 3 * j) for j in range(len(grid))]
    solos = _check("async_sgd", grid, stops)
    clipped = np.concatenate([s.recorder.arrival_arrays()["clipped"] for s in solos])
    assert set(np.unique(clipped[~np.isnan(clipped)])) == {0.0, 1.0}  # both ran
    delays = solos[0].recorder.arrival_arrays()["delay"]
    assert delays.max() > NUM_WORKERS  # the delay rule bit


def test_normalized_grid_equals_its_one_configuration_runs() -> None:
    grid = [NormalizedSGDParams(stepsize=g, assign="random") for g in (0.01, 0.1, 0.3)]
    _check("normalized_sgd", grid, [StopRule(max_time=30.0)] * 3)


def test_ringmaster_grid_discards_as_alone() -> None:
    grid = [
        RingmasterParams(stepsize=g, max_norm=c, max_delay=r)
        for g in (0.05, 0.2)
        for c in (None, 0.5)
        for r in (2, 3)
    ]
    solos = _check("ringmaster", grid, [StopRule(max_arrivals=40)] * len(grid))
    assert solos[0].counts["discarded"] > 0
    with_cancel = dataclasses.replace(grid[0], cancel_stale=True)
    assert lookup("ringmaster").columns([with_cancel]) is None  # type: ignore[misc]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_non_finite_gradients_are_skipped_as_alone() -> None:
    # γ = 50 overflows the iterate within a few updates: later gradients are inf
    # or NaN, skipped (counted, never applied) exactly as in the scalar policy.
    grid = [AsyncSGDParams(stepsize=g) for g in (50.0, 0.1)]
    solos = _check("async_sgd", grid, [StopRule(max_arrivals=400)] * 2, every=None)
    assert solos[0].counts["skipped"] > 0 and solos[1].counts["skipped"] == 0


def test_a_zero_gradient_normalises_to_zero_as_alone() -> None:
    zero = LeastSquares.from_arrays(np.eye(3), np.zeros(3), batch_size=2)
    grid = [NormalizedSGDParams(stepsize=g) for g in (0.1, 0.2)]
    solos = _check("normalized_sgd", grid, [StopRule(max_arrivals=10)] * 2, zero, None)
    assert np.all(solos[0].recorder.arrival_arrays()["clipped"] == 0.0)


def test_grids_with_state_or_mixed_assignment_have_no_vectorised_step() -> None:
    adaptive = AdaptiveClip(quantile=0.5, initial_max_norm=1.0, window=4)
    assert async_columns([AsyncSGDParams(stepsize=0.1, adaptive_clip=adaptive)]) is None
    mixed = [AsyncSGDParams(stepsize=0.1, assign=a) for a in ("same", "random")]
    assert async_columns(mixed) is None
    step = normalized_columns([NormalizedSGDParams(stepsize=0.1)])
    assert step is not None and step.num_columns == 1


def test_a_batched_grid_is_bit_reproducible() -> None:
    grid = [AsyncSGDParams(stepsize=g, max_norm=1.0) for g in (0.05, 0.1, 0.2)]
    stops = [StopRule(max_arrivals=30)] * 3
    first = _columns("async_sgd", grid, stops, PROBLEM, 2.0)
    again = _columns("async_sgd", grid, stops, PROBLEM, 2.0)
    for a, b in zip(first, again, strict=True):
        assert a is not None and b is not None
        np.testing.assert_array_equal(a.params, b.params)
        assert a.recorder.evals == b.recorder.evals
