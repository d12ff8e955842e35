"""Batched runs (:mod:`clipasync.sim.batched`): K configurations in one event loop
give each configuration its own one-configuration run.

For every registered method, a small grid around its example point (its transform
hyperparameters varied, schedule fields kept) runs once batched and once per
configuration with :func:`clipasync.engine.run`, as the experiment layer builds
both. Each configuration must have the same event records (time, job, worker,
version, delay, applied/discarded/skipped, compute time) and counts exactly, and
its iterate, evaluations and recorded norms equal up to the rounding of the batched
products. The bound: one batched gradient entry differs from the matrix–vector one
by a few ulps (|B|·u at most, u = 2^-53 ≈ 1.1e-16, |B| = 4 here), and a stable
run carries a perturbation forward at most about linearly in the number of updates
T, so ``rtol = 1e-12 · T`` leaves a wide margin over the ≈ 1e-16 · T seen while any
logic error shows as an O(1) difference.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, Target, run
from clipasync.experiments.batched import many_task
from clipasync.experiments.build import build_task
from clipasync.policies.base import PolicyBase
from clipasync.policies.registry import MethodEntry, entries
from clipasync.problems import LeastSquares
from clipasync.problems.many import gradient_task
from clipasync.recorder import Recorder
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.sim.batched import BatchedTask, run_batched
from clipasync.timing import random_times
from clipasync.types import Arrival, Reply, Vector

NUM_WORKERS = 3
NUM_SAMPLES = 60
PROBLEM = LeastSquares(
    num_samples=NUM_SAMPLES,
    dim=4,
    batch_size=4,
    noise_std=0.1,
    seed=0,
    partition=[np.arange(w, NUM_SAMPLES, NUM_WORKERS) for w in range(NUM_WORKERS)],
)
TIMING = random_times("lognormal", 1.0, NUM_WORKERS, sigma=0.8)
SEED = 5
#: Per-configuration budgets: configurations stop at different events.
ARRIVALS = (40, 25, 40, 33)
EXACT = (
    "time",
    "job",
    "worker",
    "version",
    "delay",
    "applied",
    "discarded",
    "skipped",
    "compute_time",
)


def _variants(entry: MethodEntry[Any]) -> list[Any]:
    """The example and three neighbours: float axes outside the schedule scaled."""
    ex: Any = entry.example
    free = [
        a
        for a in entry.axes
        if a not in (entry.schedule or ()) and isinstance(getattr(ex, a), float)
    ]
    assert free, f"{entry.name}: no float axis to vary"
    first = free[0]
    out = [ex]
    out += [
        dataclasses.replace(ex, **{first: getattr(ex, first) * f}) for f in (0.5, 0.25)
    ]
    last = free[-1]
    out.append(dataclasses.replace(ex, **{last: getattr(ex, last) * 0.3}))
    return out


def _stops(target: Target | None = None) -> list[StopRule]:
    return [
        StopRule(max_arrivals=a, target=target if j == 0 else None)
        for j, a in enumerate(ARRIVALS)
    ]


def _solo(entry: MethodEntry[Any], params: Any, stop: StopRule) -> RunResult:
    policy = entry.build(params)
    pool = SimulatedPool(TIMING, build_task(entry.name, params, policy, PROBLEM), SEED)
    return run(
        policy,
        pool,
        PROBLEM.initial_point(),
        stop=stop,
        rng=stream(SEED, Stream.POLICY),
        evaluate=PROBLEM.evaluate,
        eval_every=2.0,
        recorder=Recorder(),
    )


def _batched(
    entry: MethodEntry[Any], grid: list[Any], stops: list[StopRule]
) -> list[RunResult | None]:
    policies = [entry.build(p) for p in grid]
    task = BatchedTask(many_task(entry.name, grid, policies, PROBLEM), len(grid))
    out = run_batched(
        policies,
        SimulatedPool(TIMING, task, SEED),
        task,
        PROBLEM.initial_point(),
        stops=stops,
        rngs=[stream(SEED, Stream.POLICY) for _ in grid],
        evaluates=[PROBLEM.evaluate] * len(grid),
        eval_every=[2.0] * len(grid),
    )
    assert not out.ejected
    return out.results


def assert_same_run(solo: RunResult, batched: RunResult, rtol: float) -> None:
    """Equal event records and counts; iterates and metrics within ``rtol``."""
    assert batched.stop_reason == solo.stop_reason
    assert batched.counts == solo.counts
    assert batched.version == solo.version and batched.time == solo.time
    assert batched.time_to_target == solo.time_to_target
    a, b = solo.recorder.arrival_arrays(), batched.recorder.arrival_arrays()
    assert list(a) == list(b)
    for col in a:
        if col in EXACT:
            np.testing.assert_array_equal(b[col], a[col], err_msg=col)
        else:
            np.testing.assert_allclose(b[col], a[col], rtol=rtol, err_msg=col)
    ca, cb = solo.recorder.cancellation_arrays(), batched.recorder.cancellation_arrays()
    assert list(ca) == list(cb)
    for col in ca:
        np.testing.assert_array_equal(cb[col], ca[col], err_msg=col)
    assert len(batched.recorder.evals) == len(solo.recorder.evals)
    for ea, eb in zip(solo.recorder.evals, batched.recorder.evals, strict=True):
        assert list(ea) == list(eb)
        np.testing.assert_allclose(list(eb.values()), list(ea.values()), rtol=rtol)
    scale = float(np.max(np.abs(solo.params)))
    np.testing.assert_allclose(
        batched.params, solo.params, rtol=rtol, atol=rtol * scale
    )


@pytest.fixture(params=entries(), ids=lambda e: e.name)
def entry(request: pytest.FixtureRequest) -> MethodEntry[Any]:
    e: MethodEntry[Any] = request.param
    return e


def test_every_method_batched_equals_its_one_configuration_runs(
    entry: MethodEntry[Any],
) -> None:
    grid = _variants(entry)
    stops = _stops()
    for params, stop, got in zip(
        grid, stops, _batched(entry, grid, stops), strict=True
    ):
        solo = _solo(entry, params, stop)
        assert got is not None
        assert_same_run(solo, got, rtol=1e-12 * max(solo.counts["arrivals"], 1))


def test_a_configuration_that_reaches_its_target_stops_alone() -> None:
    entry = next(e for e in entries() if e.name == "async_sgd")
    grid = _variants(entry)
    solo = _solo(entry, grid[0], StopRule(max_arrivals=40))
    # A target the first configuration reaches in the middle of the run.
    loss = [e["loss"] for e in solo.recorder.evals]
    target = Target("loss", float(np.median(loss)))
    stops = _stops(target)
    results = _batched(entry, grid, stops)
    first = results[0]
    assert first is not None and first.stop_reason == "target"
    assert first.counts["arrivals"] < ARRIVALS[0]
    assert_same_run(_solo(entry, grid[0], stops[0]), first, rtol=1e-10)
    # The others ran to their own budgets, unaffected by the first stopping.
    for params, stop, got in zip(grid[1:], stops[1:], results[1:], strict=True):
        assert got is not None and got.counts["arrivals"] == stop.max_arrivals
        assert_same_run(_solo(entry, params, stop), got, rtol=1e-10)


def test_a_finished_configuration_stops_costing_compute() -> None:
    entry = next(e for e in entries() if e.name == "async_sgd")
    grid = _variants(entry)
    rows: list[int] = []
    inner = many_task(entry.name, grid, [entry.build(p) for p in grid], PROBLEM)

    def counting(worker: int, xs: Any, cols: Any, rng: Any) -> Any:
        rows.append(xs.shape[0])
        return inner(worker, xs, cols, rng)

    task = BatchedTask(counting, len(grid))
    run_batched(
        [entry.build(p) for p in grid],
        SimulatedPool(TIMING, task, SEED),
        task,
        PROBLEM.initial_point(),
        stops=[StopRule(max_arrivals=a) for a in (40, 10, 10, 10)],
        rngs=[stream(SEED, Stream.POLICY) for _ in grid],
        evaluates=[None] * 4,
        eval_every=[None] * 4,
    )
    assert rows[:10] == [4] * 10  # every configuration's gradient
    assert set(rows[10 + NUM_WORKERS :]) == {1}  # only the last one's


class _Picky(PolicyBase[Any]):
    """A toy policy whose next worker depends on its iterate: worker 0 once x has
    moved, else the worker that returned."""

    name = "picky"

    def __init__(self, step: float) -> None:
        self.step = step

    def init(self, x0: Vector, num_workers: int, rng: np.random.Generator) -> Any:
        return _PickyState(x0, 0, num_workers)

    def on_arrival(self, state: Any, arrival: Arrival) -> tuple[Any, Reply]:
        assert arrival.payload is not None
        x = state.x - self.step * arrival.payload
        w = 0 if x[0] != 0.0 else arrival.worker
        new = _PickyState(x, state.version + 1, state.num_workers)
        return new, Reply(applied=True, dispatch=(w,))

    def to_config(self) -> dict[str, Any]:
        return {"policy": "picky"}


@dataclasses.dataclass(frozen=True)
class _PickyState:
    x: Vector
    version: int
    num_workers: int


def test_configurations_whose_decisions_part_from_the_majority_are_ejected() -> None:
    steps = (0.0, 0.0, 0.9, 0.0)  # only the third moves, and then picks worker 0
    policies = [_Picky(s) for s in steps]
    task = BatchedTask(gradient_task(PROBLEM), len(steps))
    out = run_batched(
        policies,
        SimulatedPool(TIMING, task, SEED),
        task,
        np.zeros(4),
        stops=[StopRule(max_arrivals=30)] * 4,
        rngs=[stream(SEED, Stream.POLICY) for _ in steps],
        evaluates=[None] * 4,
        eval_every=[None] * 4,
    )
    assert out.ejected == (2,)
    assert out.results[2] is None
    for r in (out.results[0], out.results[1], out.results[3]):
        assert r is not None and r.counts["arrivals"] == 30
        workers = r.recorder.arrival_arrays()["worker"]
        assert set(workers.tolist()) == set(range(NUM_WORKERS))
