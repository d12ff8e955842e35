"""Grids run side by side (:mod:`clipasync.experiments.batched`): which runs batch
together, and a batched experiment writes the runs of the one-by-one experiment
(summaries and records equal up to rounding, ``wall_time`` apart)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from clipasync.experiments import validate_config
from clipasync.experiments.batched import batch_key, group_specs
from clipasync.experiments.grid import expand
from clipasync.experiments.runner import run_experiment
from clipasync.policies.registry import lookup, register, unregister
from tests.conftest import tiny_experiment

METHODS = {
    "clipped": {"policy": "async_sgd", "stepsize": [0.2, 0.1], "max_norm": [1.0]},
    "vanilla": {"policy": "async_sgd", "stepsize": [0.2]},
    "ringmaster": {"policy": "ringmaster", "stepsize": [0.2, 0.1], "max_delay": [2, 3]},
}


def _config(**extra: Any) -> Any:
    raw = tiny_experiment(METHODS)
    raw["seeds"] = [0, 1]
    raw["stop"] = {"max_time": 12, "target": {"metric": "loss", "value": 0.05}}
    raw.update(extra)
    return validate_config(raw)


def test_runs_batch_by_event_family_and_seed() -> None:
    specs = expand(_config())
    groups = group_specs(specs)
    sizes = sorted(
        (len(g), len({s.seed for s in g}), len({s.method for s in g})) for g in groups
    )
    # clipped, vanilla and Ringmaster (no cancellations) answer every arrival by
    # re-dispatching its worker: one loop per seed holds all 7 points.
    assert sizes == [(7, 1, 3)] * 2
    assert sum(len(g) for g in groups) == len(specs)
    assert group_specs(specs, batch=False) == [[s] for s in specs]


def test_cancelling_or_random_points_batch_only_with_their_own_method() -> None:
    methods = {
        "same": {"policy": "async_sgd", "stepsize": [0.2]},
        "random": {"policy": "async_sgd", "stepsize": [0.2, 0.1], "assign": "random"},
        "normalized": {
            "policy": "normalized_sgd",
            "stepsize": [0.1],
            "assign": "random",
        },
        "rennala": {"policy": "rennala", "stepsize": [0.2], "batch_size": [2, 3]},
        "rennala_cancel": {
            "policy": "rennala",
            "stepsize": [0.2, 0.1],
            "batch_size": [2, 3],
            "cancel_stale": True,
        },
        "ringmaster_cancel": {
            "policy": "ringmaster",
            "stepsize": [0.2, 0.1],
            "max_delay": [2],
            "cancel_stale": True,
        },
    }
    groups = group_specs(expand(validate_config(tiny_experiment(methods))))
    members = sorted(
        sorted(f"{s.method}:{s.params.stepsize}" for s in g) for g in groups
    )
    assert members == [
        ["normalized:0.1", "random:0.1", "random:0.2"],  # "redispatch:random"
        ["rennala:0.2", "rennala:0.2", "same:0.2"],  # "redispatch:same"
        ["rennala_cancel:0.1", "rennala_cancel:0.2"],  # B = 2: its restarts
        ["rennala_cancel:0.1", "rennala_cancel:0.2"],  # B = 3
        ["ringmaster_cancel:0.1", "ringmaster_cancel:0.2"],
    ]


def test_a_method_without_a_schedule_runs_alone() -> None:
    entry = dataclasses.replace(
        lookup("async_sgd"), name="unbatched", schedule=None, family=None
    )
    register(entry)
    try:
        raw = tiny_experiment({"u": {"policy": "unbatched", "stepsize": [0.1, 0.2]}})
        specs = expand(validate_config(raw))
        assert batch_key(specs[0]) is None
        assert group_specs(specs) == [[s] for s in specs]
    finally:
        unregister("unbatched")


def _same_outputs(a: Path, b: Path) -> int:
    """Assert the runs of two output directories agree; return how many."""
    ids = sorted(p.name for p in (a / "runs").iterdir())
    assert ids == sorted(p.name for p in (b / "runs").iterdir())
    for run_id in ids:
        sa = json.loads((a / "runs" / run_id / "summary.json").read_text())
        sb = json.loads((b / "runs" / run_id / "summary.json").read_text())
        sa.pop("wall_time"), sb.pop("wall_time")
        assert sa.keys() == sb.keys()
        for key in sa:
            if isinstance(sa[key], float):
                assert sb[key] == pytest.approx(sa[key], rel=1e-10, nan_ok=True), key
            elif isinstance(sa[key], dict) and key in ("initial", "final"):
                assert sb[key] == pytest.approx(sa[key], rel=1e-10), key
            else:
                assert sb[key] == sa[key], key
        for name in ("arrivals.csv.gz", "evals.csv"):
            da = pd.read_csv(a / "runs" / run_id / name)
            db = pd.read_csv(b / "runs" / run_id / name)
            assert list(da.columns) == list(db.columns)
            np.testing.assert_allclose(
                db.to_numpy(float), da.to_numpy(float), rtol=1e-10
            )
    return len(ids)


def test_a_batched_experiment_writes_the_one_by_one_runs(tmp_path: Path) -> None:
    cfg = _config()
    batched = run_experiment(cfg, tmp_path / "b", progress=False)
    alone = run_experiment(cfg, tmp_path / "n", progress=False, batch=False)
    assert _same_outputs(alone, batched) == 14
    off = run_experiment(_config(batch_grid=False), tmp_path / "o", progress=False)
    assert _same_outputs(alone, off) == 14


def test_batched_runs_keep_the_timing_tie_break(tmp_path: Path) -> None:
    # Two fast workers at time 1 finish together at every step, so the tie-break
    # decides the worker order of the arrival records.
    cfg = _config()
    raw = cfg.model_dump(mode="json", exclude_none=True)
    raw["timing"]["tie_break"] = "worker"
    by_worker = validate_config(raw)
    batched = run_experiment(by_worker, tmp_path / "b", progress=False)
    alone = run_experiment(by_worker, tmp_path / "n", progress=False, batch=False)
    assert _same_outputs(alone, batched) == 14
    run_id = sorted(p.name for p in (batched / "runs").iterdir())[0]
    start = run_experiment(cfg, tmp_path / "s", progress=False, batch=False)
    start_ids = sorted(p.name for p in (start / "runs").iterdir())
    workers = pd.read_csv(batched / "runs" / run_id / "arrivals.csv.gz")["worker"]
    first = pd.read_csv(start / "runs" / start_ids[0] / "arrivals.csv.gz")["worker"]
    assert list(workers) != list(first)


def test_a_resumed_batched_grid_redoes_a_lost_run_bit_for_bit(tmp_path: Path) -> None:
    cfg = _config()
    out = run_experiment(cfg, tmp_path / "b", progress=False)
    group = next(g for g in group_specs(expand(cfg)) if len(g) > 1)
    lost = out / "runs" / group[1].run_id
    before = {p.name: p.read_bytes() for p in lost.iterdir()}
    kept = (out / "runs" / group[0].run_id / "summary.json").read_bytes()
    shutil.rmtree(lost)
    run_experiment(cfg, out, progress=False)
    after = {p.name: p.read_bytes() for p in lost.iterdir()}
    summary = json.loads(after.pop("summary.json"))
    summary_before = json.loads(before.pop("summary.json"))
    summary.pop("wall_time"), summary_before.pop("wall_time")
    assert summary == summary_before
    assert after == before  # arrival and evaluation records, byte for byte
    # The finished run of the same batch was recomputed, not rewritten.
    assert (out / "runs" / group[0].run_id / "summary.json").read_bytes() == kept


NEWER = {  # the methods of the faithful-baselines issue, two stepsizes each
    "momentum": {"policy": "async_momentum", "stepsize": [0.1, 0.05],
                 "server_momentum": [0.5]},
    "dc": {"policy": "dc_asgd", "stepsize": [0.1, 0.05], "compensation": [0.5]},
    "picky": {"policy": "picky_sgd", "stepsize": [0.1, 0.05], "threshold": [0.5]},
    "ringleader": {"policy": "ringleader", "stepsize": [0.1, 0.05]},
    "malenia": {"policy": "malenia", "stepsize": [0.1, 0.05], "batch_size": [3]},
    "m_sync": {"policy": "m_sync", "stepsize": [0.1, 0.05], "quorum": [2]},
    "mindflayer": {"policy": "mindflayer", "stepsize": [0.1, 0.05],
                   "batch_size": [2], "time_limit": [2.5]},
    "fedavg": {"policy": "fedavg", "local_stepsize": [0.1, 0.05],
               "clients_per_round": 2},
}  # fmt: skip


def test_the_newer_methods_batch_their_grids_and_write_the_one_by_one_runs(
    tmp_path: Path,
) -> None:
    cfg = validate_config(tiny_experiment(NEWER))
    groups = group_specs(expand(cfg))
    assert sorted(sorted({s.method for s in g}) for g in groups) == sorted(
        [m] for m in NEWER
    )
    assert all(len(g) == 2 for g in groups)
    batched = run_experiment(cfg, tmp_path / "b", progress=False)
    alone = run_experiment(cfg, tmp_path / "n", progress=False, batch=False)
    assert _same_outputs(alone, batched) == 16
