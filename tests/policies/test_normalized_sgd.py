"""normalized_sgd: the registered control x ← x − γ·g/‖g‖, from the registry and
through a YAML file; clipped ASGD at a tiny c and the same γ·c runs the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError, HyperparameterError
from clipasync.experiments.loading import load_config
from clipasync.experiments.rundir import arrivals_path, load_runs
from clipasync.experiments.runner import run_experiment
from clipasync.experiments.schema import validate_config
from clipasync.io import read_columns
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.params import NormalizedSGDParams
from clipasync.policies.registry import label, lookup
from clipasync.types import Arrival


def test_entry_fields_record_and_label() -> None:
    entry = lookup("normalized_sgd")
    assert entry.params is NormalizedSGDParams
    assert entry.fields == ("stepsize", "assign")
    assert entry.axes == ("stepsize",)
    assert entry.tags == (("stepsize", "g"),)
    assert not entry.federated and not entry.needs_all_workers
    params = NormalizedSGDParams(stepsize=0.25)
    assert entry.to_hyper(params) == {"stepsize": 0.25, "assign": "same"}
    assert entry.from_hyper({"stepsize": 0.25, "assign": "same"}) == params
    assert label("normalized_sgd", {"stepsize": 0.25, "assign": "random"}) == (
        "γ=0.25, random assignment"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"stepsize": 0.0}, "stepsize"), ({"stepsize": 1.0, "assign": "x"}, "assign")],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(HyperparameterError) as info:
        NormalizedSGDParams(**kwargs)
    assert info.value.field == field


def test_one_update_moves_exactly_gamma_along_minus_g_over_norm() -> None:
    policy = lookup("normalized_sgd").build(NormalizedSGDParams(stepsize=0.5))
    assert isinstance(policy, AsyncSGD) and policy.name == "normalized_sgd"
    state = policy.init(np.array([1.0, 1.0]), 2, np.random.default_rng(0))
    g = np.array([6.0, 8.0])  # ‖g‖ = 10: u = 0.5·(0.6, 0.8)
    state, reply = policy.on_arrival(
        state, Arrival(job=0, worker=0, version=0, payload=g, time=1.0)
    )
    np.testing.assert_array_equal(policy.params(state), [0.7, 0.6])
    assert reply.applied and reply.dispatch == (0,)
    assert reply.info["pre_clip_norm"] == 10.0 and reply.info["clipped"] == 1.0
    # A zero gradient leaves x where it is.
    state, _ = policy.on_arrival(
        state, Arrival(job=1, worker=1, version=0, payload=np.zeros(2), time=2.0)
    )
    np.testing.assert_array_equal(policy.params(state), [0.7, 0.6])
    assert policy.version(state) == 2


CONFIG = """\
name: normalized_control
seeds: [0]
problem: {name: least_squares, num_samples: 100, dim: 5, batch_size: 8, seed: 0}
timing: {kind: two_speed, num_fast: 2, num_slow: 1, slow_time: 4}
methods:
  normalized: {policy: normalized_sgd, stepsize: [0.05]}
  tiny_clip: {policy: async_sgd, stepsize: [50000.0], max_norm: [1.0e-6]}
stop: {max_time: 20}
eval_every: 1
workers: 1
"""


def test_yaml_runs_it_and_it_is_the_small_c_limit_of_clipped_asgd(
    tmp_path: Path,
) -> None:
    path = tmp_path / "control.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    cfg = load_config(path)
    assert cfg.methods["normalized"].grid() == [{"stepsize": 0.05, "assign": "same"}]
    out = run_experiment(cfg, tmp_path / "out", progress=False)
    runs = {r["method"]: r for r in load_runs(out)}
    norm, clip = runs["normalized"], runs["tiny_clip"]
    assert norm["policy"] == "normalized_sgd" and norm["frac_clipped"] == 1.0
    assert norm["run_id"].startswith("normalized-g0.05-s0-")
    # γ'·clip_c(g) with γ'·c = 0.05 and c below every ‖g‖: the same run up to
    # rounding (same arrivals, same telemetry, same iterates).
    assert clip["frac_clipped"] == 1.0
    assert norm["counts"] == clip["counts"]
    for key in ("loss", "grad_norm"):
        assert norm["final"][key] == pytest.approx(clip["final"][key], rel=1e-9)
    rows = read_columns(arrivals_path(out / "runs" / norm["run_id"]))
    other = read_columns(arrivals_path(out / "runs" / clip["run_id"]))
    np.testing.assert_array_equal(rows["delay"], other["delay"])
    np.testing.assert_allclose(rows["pre_clip_norm"], other["pre_clip_norm"], 1e-9)
    assert np.all(rows["clipped"] == 1.0)


def test_validate_rejects_a_field_it_does_not_have() -> None:
    raw = {
        "name": "bad",
        "seeds": [0],
        "problem": {"name": "least_squares", "num_samples": 20, "dim": 2},
        "timing": {"kind": "two_speed", "num_fast": 1, "num_slow": 1},
        "methods": {"n": {"policy": "normalized_sgd", "stepsize": 0.1, "max_norm": 1}},
        "stop": {"max_time": 5},
    }
    with pytest.raises(ConfigError, match=r"max_norm.*not a field of policy"):
        validate_config(raw)
    raw["methods"]["n"].pop("max_norm")
    assert validate_config(raw).methods["n"].points() == [
        NormalizedSGDParams(stepsize=0.1)
    ]
