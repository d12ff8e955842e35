"""Event families (:mod:`clipasync.policies.families`): Rennala's vectorised step,
and a grid over several methods of one family in one batched loop, each
configuration equal to its one-configuration run (event records exact; iterates,
metrics and norms within ``rtol = 1e-12 · T``, the bound of
:mod:`tests.sim.test_batched`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule
from clipasync.policies.families import ColumnUnion
from clipasync.policies.params import (
    AsyncSGDParams,
    NormalizedSGDParams,
    RennalaParams,
    RingmasterParams,
)
from clipasync.policies.registry import group_columns, lookup
from clipasync.policies.rennala_columns import rennala_columns
from clipasync.transforms.chains import AdaptiveClip
from tests.sim.test_batched import PROBLEM, assert_same_run
from tests.sim.test_columns import _solo, run_step


def _batched(
    points: list[tuple[str, Any]], stops: list[StopRule]
) -> list[RunResult | None]:
    step = group_columns([p for p, _ in points], [q for _, q in points])
    assert step is not None
    return run_step(step, stops, PROBLEM, 2.0)


def _check(points: list[tuple[str, Any]], stops: list[StopRule]) -> list[RunResult]:
    solos = []
    for (policy, params), stop, got in zip(
        points, stops, _batched(points, stops), strict=True
    ):
        solo = _solo(policy, params, stop, PROBLEM, 2.0)
        assert got is not None
        assert_same_run(solo, got, rtol=1e-12 * max(solo.counts["arrivals"], 1))
        solos.append(solo)
    return solos


def test_rennala_grid_equals_its_one_configuration_runs() -> None:
    grid = [
        RennalaParams(stepsize=g, max_norm=c, batch_size=b, delay_adaptive=da)
        for g in (0.1, 0.4)
        for c in (None, 0.3)
        for b in (1, 2, 5)
        for da in (False, True)
    ]
    stops = [StopRule(max_arrivals=30 + j) for j in range(len(grid))]
    solos = _check([("rennala", p) for p in grid], stops)
    counts = [s.counts for s in solos]
    # Every batch size steps, and discards the gradients computed at an older
    # iterate (3 workers: the others' jobs are stale after each step).
    for c, p in zip(counts, grid, strict=True):
        assert c["discarded"] > 0
        assert 0 < c["applied"] <= (c["arrivals"] - c["discarded"]) // p.batch_size
    clipped = np.concatenate([s.recorder.arrival_arrays()["clipped"] for s in solos])
    assert set(np.unique(clipped[~np.isnan(clipped)])) == {0.0, 1.0}


def test_a_grid_over_one_familys_methods_equals_their_own_runs() -> None:
    points: list[tuple[str, Any]] = [
        ("async_sgd", AsyncSGDParams(stepsize=0.1, max_norm=0.5)),
        ("rennala", RennalaParams(stepsize=0.3, batch_size=3)),
        ("async_sgd", AsyncSGDParams(stepsize=0.05, delay_adaptive=True)),
        ("ringmaster", RingmasterParams(stepsize=0.2, max_delay=2)),
        ("normalized_sgd", NormalizedSGDParams(stepsize=0.05)),
        ("rennala", RennalaParams(stepsize=0.2, max_norm=0.2, batch_size=2)),
    ]
    families = {lookup(p).family(q) for p, q in points}  # type: ignore[misc]
    assert families == {"redispatch:same"}
    step = group_columns([p for p, _ in points], [q for _, q in points])
    assert isinstance(step, ColumnUnion) and step.num_columns == 6
    stops = [StopRule(max_arrivals=a) for a in (40, 25, 40, 33, 38, 40)]
    solos = _check(points, stops)
    assert solos[3].counts["discarded"] > 0  # Ringmaster discarded
    assert solos[1].counts["applied"] < solos[1].counts["arrivals"]  # Rennala collected


def test_points_outside_a_vectorised_step_have_none() -> None:
    cancel = RennalaParams(stepsize=0.1, batch_size=2, cancel_stale=True)
    assert rennala_columns([cancel]) is None
    assert lookup("rennala").family(cancel) is None  # type: ignore[misc]
    adaptive = AdaptiveClip(quantile=0.5, initial_max_norm=1.0, window=4)
    learned = AsyncSGDParams(stepsize=0.1, adaptive_clip=adaptive)
    assert (
        group_columns(
            ["async_sgd", "rennala"],
            [learned, RennalaParams(stepsize=0.1, batch_size=2)],
        )
        is None
    )
    arrivals = RingmasterParams(stepsize=0.1, max_delay=2, delay_count="arrivals")
    assert lookup("ringmaster").columns([arrivals]) is None  # type: ignore[misc]
    with pytest.raises(ValueError, match="batch sizes"):
        step = rennala_columns([RennalaParams(stepsize=0.1, batch_size=2)])
        assert step is not None
        type(step)(step.inner, [0])


def test_a_grid_in_method_order_concatenates_its_parts_and_equals_own_runs() -> None:
    # Rows grouped by method, as a config's grid expands: every arrival's parts
    # are runs of rows, the union's concatenating path; rows leave at different
    # arrivals, so the later arrivals bring fewer rows.
    points: list[tuple[str, Any]] = [
        ("async_sgd", AsyncSGDParams(stepsize=0.1, max_norm=0.5)),
        ("async_sgd", AsyncSGDParams(stepsize=0.05, delay_adaptive=True)),
        ("normalized_sgd", NormalizedSGDParams(stepsize=0.05)),
        ("rennala", RennalaParams(stepsize=0.3, batch_size=3)),
        ("rennala", RennalaParams(stepsize=0.2, max_norm=0.2, batch_size=2)),
    ]
    step = group_columns([p for p, _ in points], [q for _, q in points])
    assert isinstance(step, ColumnUnion)
    split = step._split(np.arange(5, dtype=np.intp))
    assert split.runs and [p[1] for p in split.pieces] == [slice(0, 3), slice(3, 5)]
    _check(points, [StopRule(max_arrivals=a) for a in (40, 21, 33, 40, 27)])


def test_an_arrival_with_no_rows_changes_nothing() -> None:
    step = group_columns(
        ["async_sgd", "rennala"],
        [AsyncSGDParams(stepsize=0.1), RennalaParams(stepsize=0.1, batch_size=2)],
    )
    assert isinstance(step, ColumnUnion)
    empty = np.zeros((0, 3))
    out = step.update(empty, empty, np.zeros(0, np.intp), np.zeros(0, np.int64), 2)
    assert out.new.shape == (0, 3) and out.applied.shape == (0,)
