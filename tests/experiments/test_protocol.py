"""The tuning protocol: its YAML block, relative grid axes, and a tiny end-to-end
run through the stages tune → refine → eval, resumed."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.experiments import expand, load_config, run_experiment, validate_config
from clipasync.experiments import runner as runner_module
from clipasync.experiments.protocol import SELECTION_FILE
from clipasync.experiments.rundir import load_runs
from clipasync.io import read_json, write_json_atomic
from clipasync.problems import make_problem
from clipasync.seeding import Stream, stream
from tests.conftest import ROOT

QUICK = ROOT / "experiments" / "quick.yaml"

PROBLEM: dict[str, Any] = {"num_samples": 200, "dim": 10, "batch_size": 8, "seed": 0}

BASE: dict[str, Any] = {
    "name": "protocol_test",
    "problem": {"name": "least_squares", **PROBLEM},
    "timing": {"kind": "two_speed", "num_fast": 2, "num_slow": 2, "slow_time": 4},
    "protocol": {
        "tuning_seeds": [0, 1],
        "eval_seeds": {"first": 10, "count": 3},
        "refine": {"factor": 2.0},
    },
    "methods": {
        "clipped": {"policy": "async_sgd", "stepsize": [0.5, 0.25], "max_norm": [1]},
        "vanilla": {"policy": "async_sgd", "stepsize": [0.5, 0.25]},
    },
    "stop": {
        "max_time": 60,
        "target": {"metric": "suboptimality", "value": 0.02, "confirm": 2},
    },
    "eval_every": 1,
    "workers": 1,
}


def _config(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        node = raw
        *parents, last = key.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return raw


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    return str(info.value)


# -- the YAML block -----------------------------------------------------------


def test_protocol_block_defaults_and_seed_ranges() -> None:
    raw = _config()
    del raw["protocol"]["refine"]
    p = validate_config(raw).protocol
    assert p is not None
    assert p.tuning_seeds == [0, 1]
    assert p.eval_seeds == [10, 11, 12]
    assert p.refine is not None and p.refine.factor == math.sqrt(2)
    assert (p.select_by, p.equal_budget, p.confidence) == ("time", True, 0.9)
    none = validate_config(_config(protocol__refine=None)).protocol
    assert none is not None and none.refine is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"protocol__eval_seeds": [1, 5]},
            "config error at protocol.eval_seeds: must be disjoint from tuning_seeds "
            "(both hold 1)",
        ),
        (
            {"protocol__eval_seeds": {"first": 3}},
            "config error at protocol.eval_seeds: a seed range {first, count} needs "
            "count",
        ),
        (
            {"protocol__tuning_seeds": [0, 0]},
            "config error at protocol.tuning_seeds: seeds must be distinct",
        ),
        (
            {"protocol__select_by": "loss"},
            "config error at protocol.select_by: must be one of",
        ),
        (
            {"protocol__refine": {"factor": 0.5}},
            "config error at protocol.refine.factor: must be > 1",
        ),
        (
            {"stop__target__confirm": 0},
            "config error at stop.target.confirm: must be >= 1",
        ),
        (
            {"stop": {"max_time": 60}},
            "config error at protocol: needs stop.target",
        ),
    ],
)
def test_protocol_errors_are_one_line_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    assert _error(_config(**changes)).startswith(message)


def test_unequal_budgets_are_a_config_error_naming_methods_and_sizes() -> None:
    raw = _config()
    raw["methods"]["vanilla"]["stepsize"] = [0.5, 0.25, 0.125]
    assert _error(raw) == (
        "config error at protocol.equal_budget: methods have unequal numbers of "
        "coarse grid points (clipped: 2, vanilla: 3); give each the same number or "
        "set equal_budget: false"
    )
    raw["protocol"]["equal_budget"] = False
    validate_config(raw)
    # Relative axes count like plain ones: 2 effective steps x 2 quantiles = 4.
    raw = _config()
    raw["protocol"]["equal_budget"] = True
    raw["methods"]["clipped"] = {
        "policy": "async_sgd",
        "effective_step": [0.1, 0.2],
        "max_norm": {"noise_quantile": [0.5, 0.9]},
    }
    assert "(clipped: 4, vanilla: 2)" in _error(raw)


# -- relative grid axes ---------------------------------------------------------


def test_effective_step_and_noise_quantile_resolve_on_the_start_point() -> None:
    raw = _config(protocol__equal_budget=False)
    raw["methods"]["clipped"] = {
        "policy": "async_sgd",
        "effective_step": [0.1, 0.2],
        "max_norm": {"noise_quantile": [0.5, 0.9]},
    }
    cfg = validate_config(raw)
    specs = [s for s in expand(cfg) if s.method == "clipped"]
    assert len(specs) == 4 * 2  # (2 x 2 points) x 2 tuning seeds
    assert {s.stage for s in specs} == {"tune"}
    # Independently: 1000 noise norms at x0 from seed 0's PROBLEM stream.
    problem = make_problem("least_squares", **PROBLEM)
    x0 = problem.initial_point()
    rng = stream(0, Stream.PROBLEM)
    full = problem.grad(x0)
    norms = [
        float(np.linalg.norm(problem.stochastic_grad(x0, rng) - full))
        for _ in range(1000)
    ]
    seen = set()
    for s in specs:
        h = s.hyper
        assert list(h) == [
            "stepsize",
            "max_norm",
            "delay_adaptive",
            "assign",
            "effective_step",
            "noise_quantile",
        ]
        c = float(np.quantile(norms, h["noise_quantile"]))
        assert h["max_norm"] == pytest.approx(c, rel=1e-12)
        assert h["stepsize"] == h["effective_step"] / h["max_norm"]
        assert s.params.stepsize == h["stepsize"]
        seen.add((h["effective_step"], h["noise_quantile"]))
    assert seen == {(0.1, 0.5), (0.1, 0.9), (0.2, 0.5), (0.2, 0.9)}
    assert [s.run_id for s in expand(validate_config(raw))] == [
        s.run_id for s in expand(cfg)
    ]
    assert "-e0.1-q0.5-s0-" in specs[0].run_id


def test_effective_step_with_numeric_clip_levels_and_plain_grids_unchanged() -> None:
    raw = _config(protocol__equal_budget=False)
    raw["methods"]["clipped"] = {
        "policy": "async_sgd",
        "effective_step": [0.5],
        "max_norm": [1, 4],
    }
    grid = validate_config(raw).methods["clipped"].grid()
    assert [(g["stepsize"], g["max_norm"]) for g in grid] == [(0.5, 1.0), (0.125, 4.0)]
    assert [g["effective_step"] for g in grid] == [0.5, 0.5]
    assert "noise_quantile" not in grid[0]
    # A plain grid records exactly the parameters' fields, as before.
    legacy = expand(load_config(QUICK))[0]
    assert list(legacy.hyper) == ["stepsize", "max_norm", "delay_adaptive", "assign"]
    assert "stage" not in legacy.record()


@pytest.mark.parametrize(
    ("method", "message"),
    [
        (
            {"policy": "async_sgd", "effective_step": 0.1},
            "effective_step: needs max_norm (stepsize = effective_step / max_norm)",
        ),
        (
            {"policy": "async_sgd", "effective_step": 0.1, "lr": 1, "max_norm": 1},
            "effective_step: give effective_step or stepsize (lr), not both",
        ),
        (
            {"policy": "async_sgd", "stepsize": 1, "max_norm": {"noise_quantile": 1}},
            "max_norm.noise_quantile: must be a number in (0, 1) (got 1)",
        ),
    ],
)
def test_relative_axis_errors_name_the_field(
    method: dict[str, Any], message: str
) -> None:
    raw = _config(protocol__equal_budget=False)
    raw["methods"]["clipped"] = method
    assert _error(raw) == f"config error at methods.clipped.{message}"


# -- end to end -----------------------------------------------------------------


def _score(run: dict[str, Any]) -> float:
    hit = run.get("robust_hit")
    return math.inf if hit is None else float(hit)


def _expected_pick(runs: list[dict[str, Any]], method: str) -> float:
    """The pick's stepsize, recomputed from the tune and refine runs by hand."""
    by_step: dict[float, list[float]] = {}
    for r in runs:
        if r["method"] == method and r["stage"] in ("tune", "refine"):
            by_step.setdefault(r["hyper"]["stepsize"], []).append(_score(r))

    def key(step: float) -> tuple[float, int, float]:
        scores = sorted(by_step[step])
        median = (scores[0] + scores[1]) / 2  # two tuning seeds
        return (median, -sum(math.isfinite(s) for s in scores), step)

    return min(by_step, key=key)


def test_protocol_runs_its_stages_selects_on_tuning_seeds_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = validate_config(_config())
    out = run_experiment(cfg, tmp_path / "out", progress=False)
    runs = load_runs(out)
    stages = [r["stage"] for r in runs]
    # 2 methods x 2 points x 2 seeds; each method's best has one new neighbour
    # (the other one is a coarse point); the 2 picks x 3 evaluation seeds.
    assert (stages.count("tune"), stages.count("refine"), stages.count("eval")) == (
        8,
        4,
        6,
    )
    assert read_json(out / "runs.json") == [r["run_id"] for r in runs]
    for r in runs:
        assert (r["seed"] in (0, 1)) == (r["stage"] != "eval")
        assert r["confirm"] == 2
        if r["robust_hit"] is not None:
            assert r["robust_hit"] >= r["first_hit"]
            assert r["updates_to_robust"] >= r["updates_to_target"]
    sel = read_json(out / SELECTION_FILE)
    assert sel["score"] == "robust_hit"
    assert sel["protocol"]["eval_seeds"] == [10, 11, 12]
    by_id = {r["run_id"]: r for r in runs}
    for entry in sel["entries"]:
        m = entry["method"]
        assert entry["budget"] == 2 and len(entry["coarse"]) == 2
        best = entry["coarse_best"]["hyper"]["stepsize"]
        refined = [c["hyper"]["stepsize"] for c in entry["refined"]]
        assert len(refined) == 1 and refined[0] in (best / 2, best * 2)
        assert refined[0] not in (0.5, 0.25)
        pick = entry["pick"]
        assert pick["hyper"]["stepsize"] == _expected_pick(runs, m)
        assert all(by_id[i]["stage"] in ("tune", "refine") for i in pick["run_ids"])
        assert entry["tuning_score"] == pick["score"]
        evals = [by_id[i] for i in entry["eval_run_ids"]]
        assert [r["seed"] for r in evals] == [10, 11, 12]
        assert all(r["stage"] == "eval" and r["hyper"] == pick["hyper"] for r in evals)
    before = (out / SELECTION_FILE).read_bytes()

    # Resume: nothing reruns, the same selection comes out.
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished run was executed again")

    monkeypatch.setattr(runner_module, "execute_unit_and_save", fail)
    run_experiment(cfg, out, progress=False)
    assert (out / SELECTION_FILE).read_bytes() == before

    # The evaluation runs cannot change the pick: make every evaluation run
    # censored (pooled with the tuning runs by grid point, that would make each
    # pick's median +inf and move the pick) and rerun.
    for entry in sel["entries"]:
        for rid in entry["eval_run_ids"]:
            path = out / "runs" / rid / "summary.json"
            s = read_json(path)
            s.update(robust_hit=None, first_hit=None, stop_reason="max_time")
            write_json_atomic(path, s)
    run_experiment(cfg, out, progress=False)
    assert (out / SELECTION_FILE).read_bytes() == before

    # A killed eval stage (one eval run missing) is redone on its own.
    monkeypatch.undo()
    gone = sel["entries"][0]["eval_run_ids"][0]
    for f in (out / "runs" / gone).iterdir():
        f.unlink()
    (out / "runs" / gone).rmdir()
    run_experiment(cfg, out, progress=False)
    assert (out / "runs" / gone / "summary.json").is_file()
    assert (out / SELECTION_FILE).read_bytes() == before


def test_protocol_stages_run_in_parallel_alike(tmp_path: Path) -> None:
    cfg = validate_config(_config(protocol__refine=None))
    one = run_experiment(cfg, tmp_path / "one", progress=False)
    two = run_experiment(cfg, tmp_path / "two", progress=False, workers=2)
    assert json.loads((one / SELECTION_FILE).read_text()) == json.loads(
        (two / SELECTION_FILE).read_text()
    )
    keys = ("run_id", "stage", "robust_hit", "first_hit", "version")
    a = [{k: r[k] for k in keys} for r in load_runs(one)]
    b = [{k: r[k] for k in keys} for r in load_runs(two)]
    assert a == b
    assert not any(r["stage"] == "refine" for r in load_runs(one))
