"""Strict values and the limits on endless experiments (experiments.limits)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from clipasync.errors import ConfigError
from clipasync.experiments.limits import check_run_budget, update_rate
from clipasync.experiments.schema import validate_config
from tests.cli.fuzz_corpus import BASE


def _with(key: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


def test_the_base_config_is_valid() -> None:
    assert validate_config(copy.deepcopy(BASE)).name == "fz"


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("seeds", [True], "seeds"),
        ("seeds", [1.5], "seeds"),
        ("problem.seed", float("nan"), "problem.seed: must be a finite number"),
        ("problem.seed", -1, "problem.seed: must be an integer >= 0"),
        ("problem.dim", None, "problem.dim: null is not a value"),
        ("stop.target.value", float("inf"), "stop.target.value"),
        ("stop.target.value", True, "stop.target.value"),
        ("stop.max_time", True, "stop.max_time"),
        ("record_arrivals", "no", "record_arrivals"),
        ("eval_every", None, "eval_every: null is not a value"),
        ("timing.num_fast", 2.0, "timing.num_fast"),
    ],
)
def test_strict_values(key: str, value: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        validate_config(_with(key, value))


def test_update_rate_is_the_sum_of_inverse_compute_times() -> None:
    # two_speed: 1 worker at 1 and 1 at 2 -> 1/1 + 1/2 arrivals per time unit.
    assert update_rate(BASE["timing"]) == pytest.approx(1.5)
    assert update_rate({"kind": "fixed", "times": [1, 4]}) == pytest.approx(1.25)
    assert update_rate({"kind": "trace", "path": "x.csv"}) is None


def test_endless_budgets_name_the_limit_and_how_to_raise_it(monkeypatch) -> None:
    timing = BASE["timing"]
    with pytest.raises(ValueError, match=r"stop.max_updates: 1e\+30 arrivals per run"):
        check_run_budget({"max_updates": 10**30}, timing, None)
    # max_time 1e8 at 1.5 arrivals per unit: 1.5e8 arrivals > 1e8.
    with pytest.raises(ValueError, match="set CLIPASYNC_MAX_EVENTS to raise it"):
        check_run_budget({"max_time": 1e8}, timing, None)
    check_run_budget({"max_time": 1e8, "max_updates": 1000}, timing, None)
    with pytest.raises(ValueError, match="eval_every: 5e\\+07 evaluations"):
        check_run_budget({"max_time": 5}, timing, 1e-7)
    monkeypatch.setenv("CLIPASYNC_MAX_EVENTS", "1e9")
    check_run_budget({"max_time": 1e8}, timing, None)


def test_huge_grids_and_sweeps_are_refused_before_they_are_built() -> None:
    big = {"base": 2, "min_exp": 0, "max_exp": 3_000_000}
    with pytest.raises(ConfigError, match="power grid: 3e\\+06 points is above"):
        validate_config(_with("methods.clipped.stepsize", big))
    axis = list(range(1, 2001))
    raw = _with("sweep", {"timing.slow_time": axis, "problem.dim": axis})
    with pytest.raises(ConfigError, match="experiment: 4e\\+06 runs is above"):
        validate_config(raw)
    with pytest.raises(ConfigError, match="number of workers"):
        validate_config(_with("timing.num_fast", 30_000_000))
