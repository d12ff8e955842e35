"""Selection on tuning seeds (medians, censoring, ties) and the refinement grid."""

from __future__ import annotations

import math
from typing import Any

import pytest

from clipasync.experiments import validate_config
from clipasync.experiments.relative import GridPoint
from clipasync.experiments.selection import (
    Candidate,
    median_score,
    refine_points,
    run_score,
    same_params,
    select,
    varied_axes,
)
from clipasync.policies.params import AsyncSGDParams, RennalaParams, RingmasterParams
from clipasync.policies.registry import lookup

TUNING = [0, 1, 2]


def _run(
    seed: int, hit: float | None, stage: str = "tune", **extra: Any
) -> dict[str, Any]:
    return {
        "run_id": f"r-{stage}-{seed}-{hit}",
        "seed": seed,
        "stage": stage,
        "robust_hit": hit,
        "updates_to_robust": None if hit is None else int(10 * hit),
        "gradients_to_robust": None if hit is None else int(20 * hit),
        "stop_reason": "target" if hit is not None else "max_time",
        **extra,
    }


def _cand(stepsize: float, hits: list[float | None], stage: str = "tune") -> Candidate:
    gp = GridPoint(AsyncSGDParams(stepsize=stepsize))
    runs = [_run(s, h, stage) for s, h in zip(TUNING, hits, strict=True)]
    hyper = lookup("async_sgd").to_hyper(gp.params)
    return Candidate.from_runs(gp, hyper, stage, runs, "time", TUNING)


def test_scores_follow_select_by_and_censor_to_infinity() -> None:
    r = _run(0, 4.0)
    assert run_score(r, "time") == 4.0
    assert run_score(r, "updates") == 40.0
    assert run_score(r, "gradients") == 80.0
    assert run_score(_run(0, None), "time") == math.inf
    assert run_score({**r, "stop_reason": "diverged"}, "time") == math.inf


def test_median_counts_censored_runs_as_infinite() -> None:
    assert median_score([5.0, 7.0, math.inf]) == 7.0
    assert median_score([5.0, math.inf, math.inf]) == math.inf
    assert median_score([3.0, 5.0]) == 4.0
    assert median_score([]) == math.inf


def test_the_pick_has_the_smallest_median_then_more_reached_then_smaller_step() -> None:
    a = _cand(0.5, [10.0, 30.0, 12.0])  # median 12
    b = _cand(0.25, [11.0, 11.5, 100.0])  # median 11.5: best
    assert select([a, b]) is b
    # Equal medians (inf): more seeds reached wins.
    c = _cand(0.5, [None, None, None])
    d = _cand(1.0, [None, None, 3.0])  # median inf too, but 1 reached
    assert c.score == d.score == math.inf
    assert select([c, d]) is d and select([d, c]) is d
    # Equal medians and reach: the smaller stepsize wins, whatever the order.
    e, f = _cand(0.5, [1.0, 2.0, 3.0]), _cand(0.25, [3.0, 2.0, 1.0])
    assert select([e, f]) is f and select([f, e]) is f


def test_selection_never_scores_evaluation_runs() -> None:
    # Tuning: A's median 11 beats B's 20. B's evaluation runs (stage eval, fresh
    # seeds) are far better: pooled with B's tuning runs they would make B's median
    # (20+1)/2 = 10.5 and B the pick.
    a = GridPoint(AsyncSGDParams(stepsize=0.5))
    b = GridPoint(AsyncSGDParams(stepsize=0.25))
    runs_a = [_run(0, 10.0), _run(1, 12.0), _run(2, 11.0)]
    runs_b = [_run(s, 20.0) for s in TUNING]
    runs_b += [_run(s, 1.0, "eval") for s in (100, 101, 102)]
    # A stray run on a tuning stage but a non-tuning seed is ignored too.
    runs_b.append(_run(7, 1.0, "refine"))
    entry = lookup("async_sgd")
    ca = Candidate.from_runs(
        a, entry.to_hyper(a.params), "tune", runs_a, "time", TUNING
    )
    cb = Candidate.from_runs(
        b, entry.to_hyper(b.params), "tune", runs_b, "time", TUNING
    )
    assert [r["seed"] for r in cb.runs] == TUNING
    assert cb.scores == [20.0, 20.0, 20.0]
    assert select([ca, cb]) is ca
    assert ca.record()["run_ids"] == [r["run_id"] for r in runs_a]


def test_refinement_points_are_best_over_and_times_the_factor_for_every_method() -> (
    None
):
    f = 1.5
    cases = [
        # (policy, best params, refined axes) -- integer axes keep their best.
        (
            "async_sgd",
            AsyncSGDParams(stepsize=0.3, max_norm=2.0),
            ("stepsize", "max_norm"),
        ),
        ("async_sgd", AsyncSGDParams(stepsize=0.3), ("stepsize", "max_norm")),
        ("ringmaster", RingmasterParams(stepsize=0.3, max_delay=8), ("stepsize",)),
        ("rennala", RennalaParams(stepsize=0.3, batch_size=4), ("stepsize",)),
    ]
    for policy, best, axes in cases:
        entry = lookup(policy)
        pts = refine_points(entry, GridPoint(best), f, axes)
        steps = [p.params.stepsize for p in pts]
        assert steps[:2] == [0.3 / f, 0.3 * f], policy
        for p in pts:
            for name in ("max_delay", "batch_size"):
                if hasattr(best, name):
                    assert getattr(p.params, name) == getattr(best, name)
        if best.max_norm is not None:
            # then max_norm at 2/f and 2f with the stepsize at its best
            assert [(p.params.stepsize, p.params.max_norm) for p in pts[2:]] == [
                (0.3, 2.0 / f),
                (0.3, 2.0 * f),
            ]
            assert len(pts) == 4
        else:
            assert len(pts) == 2  # no clipping: nothing to refine on max_norm
            assert all(p.params.max_norm is None for p in pts)


def test_refinement_of_relative_axes_keeps_the_effective_step_relation() -> None:
    f = 2.0
    c = 0.4
    best = GridPoint(
        AsyncSGDParams(stepsize=0.1 / c, max_norm=c),
        {"effective_step": 0.1, "noise_quantile": 0.9},
    )
    pts = refine_points(lookup("async_sgd"), best, f, ("stepsize", "max_norm"))
    assert [p.extra.get("effective_step") for p in pts] == [0.1 / f, 0.1 * f, 0.1, 0.1]
    assert [p.params.max_norm for p in pts] == [c, c, c / f, c * f]
    for p in pts:
        assert p.params.stepsize == p.extra["effective_step"] / p.params.max_norm
        assert p.extra["noise_quantile"] == 0.9
    assert [p.extra.get("clip_scale") for p in pts] == [None, None, 1 / f, f]


def _method(values: dict[str, Any]) -> Any:
    raw = {
        "name": "t",
        "problem": {"name": "least_squares", "num_samples": 50, "dim": 3},
        "timing": {"kind": "fixed", "times": [1, 1]},
        "methods": {"m": values},
        "stop": {"max_time": 5},
    }
    return validate_config(raw).methods["m"]


@pytest.mark.parametrize(
    ("values", "axes"),
    [
        (
            {"policy": "async_sgd", "stepsize": [0.1, 0.2], "max_norm": [1]},
            ("stepsize",),
        ),
        ({"policy": "async_sgd", "stepsize": [0.1], "max_norm": [1, 2]}, ("max_norm",)),
        (
            {"policy": "ringmaster", "stepsize": [0.1, 0.2], "max_delay": [2, 4]},
            ("stepsize",),
        ),
        (
            {
                "policy": "async_sgd",
                "effective_step": [0.1, 0.2],
                "max_norm": {"noise_quantile": [0.5, 0.9]},
            },
            ("stepsize", "max_norm"),
        ),
        ({"policy": "async_sgd", "stepsize": [0.1]}, ()),
    ],
)
def test_refined_axes_are_the_varied_refinable_ones(
    values: dict[str, Any], axes: tuple[str, ...]
) -> None:
    assert varied_axes(_method(values)) == axes


def test_same_params_tolerates_rounding_only() -> None:
    entry = lookup("async_sgd")
    a = GridPoint(AsyncSGDParams(stepsize=0.25 * math.sqrt(2) * math.sqrt(2)))
    assert same_params(entry, a, GridPoint(AsyncSGDParams(stepsize=0.5)))
    assert not same_params(entry, a, GridPoint(AsyncSGDParams(stepsize=0.5001)))
    assert not same_params(
        entry, a, GridPoint(AsyncSGDParams(stepsize=0.5, max_norm=1.0))
    )
