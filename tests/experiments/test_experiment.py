"""Grid expansion, run ids, end-to-end runs, resumability, run directories."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipasync.experiments import (
    ExperimentConfig,
    RunSpec,
    expand,
    load_config,
    run_experiment,
)
from clipasync.experiments import runner as experiment
from clipasync.experiments.batched import batch_key
from clipasync.experiments.build import build_policy
from clipasync.experiments.execute import RunOutcome, execute
from clipasync.experiments.rundir import (
    ARRIVALS_FILE,
    LEGACY_ARRIVALS_FILE,
    arrivals_path,
    save_run,
)
from clipasync.io import read_columns, read_json, write_csv_atomic
from clipasync.policies.params import (
    AsyncSGDParams,
    MinibatchParams,
    RennalaParams,
    RingmasterParams,
)
from clipasync.reports.report import build_report
from tests.conftest import ROOT

QUICK = ROOT / "experiments" / "quick.yaml"


@pytest.fixture
def quick() -> ExperimentConfig:
    return load_config(QUICK)


def test_grid_expansion_counts(quick: ExperimentConfig) -> None:
    specs = expand(quick)
    per_point = sum(len(m.grid()) for m in quick.methods.values()) * len(quick.seeds)
    assert len(specs) == len(quick.sweep_points()) * per_point == 20
    stragglers = load_config(ROOT / "experiments" / "stragglers_two_speed.yaml")
    grid = sum(len(m.grid()) for m in stragglers.methods.values())
    assert len(expand(stragglers)) == 6 * 3 * grid


def test_run_ids_are_stable_and_unique(quick: ExperimentConfig) -> None:
    a = [s.run_id for s in expand(quick)]
    b = [s.run_id for s in expand(load_config(QUICK))]
    assert a == b
    assert len(set(a)) == len(a)
    assert a[0].startswith("clipped-slow_time1-g0.5-c1-s0-")
    changed = [s.run_id for s in expand(load_config(QUICK, ["problem.dim=11"]))]
    assert not set(changed) & set(a)


def test_build_policy_kinds() -> None:
    names = {
        "async_sgd": AsyncSGDParams(stepsize=0.1, max_norm=1.0),
        "ringmaster": RingmasterParams(stepsize=0.1, max_delay=4),
        "rennala": RennalaParams(stepsize=0.1, batch_size=2),
        "minibatch": MinibatchParams(stepsize=0.1, delay_adaptive=True),
    }
    for policy, params in names.items():
        assert build_policy(policy, params).name == policy
    ring = build_policy("ringmaster", names["ringmaster"])
    assert ring.to_config()["max_delay"] == 4


def test_spec_hyper_is_the_record_of_its_typed_point(quick: ExperimentConfig) -> None:
    spec = expand(quick)[0]
    assert spec.params == AsyncSGDParams(stepsize=0.5, max_norm=1.0)
    # Keys, order and types as run records have always had them.
    assert list(spec.settings()["hyper"].items()) == [
        ("stepsize", 0.5),
        ("max_norm", 1.0),
        ("delay_adaptive", False),
        ("assign", "same"),
    ]
    assert spec.record()["run_id"] == spec.run_id
    assert "availability" not in spec.settings()


def _count_executions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = experiment.execute

    def counting(spec: RunSpec) -> RunOutcome:
        calls.append(spec.run_id)
        return real(spec)

    real_group = experiment.execute_group

    def counting_group(specs: list[RunSpec]) -> list[RunOutcome]:
        calls.extend(s.run_id for s in specs)  # runs batched side by side
        return real_group(specs)

    monkeypatch.setattr(experiment, "execute", counting)
    monkeypatch.setattr(experiment, "execute_group", counting_group)
    return calls


def test_end_to_end_and_resume(
    tmp_path: Path, quick: ExperimentConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_executions(monkeypatch)
    out = run_experiment(quick, tmp_path / "r", progress=False, workers=1)
    assert len(calls) == 20
    assert not (out / "report.md").exists()  # the report is built apart
    build_report(out)
    for name in (
        "summary.csv",
        "report.md",
        "config.resolved.yaml",
        "headline.png",
        "curves.png",
        "delays.png",
        "norm_vs_delay.png",
    ):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "![headline](headline.png)" in report
    assert "Speedup of clipped" in report
    run_dirs = [p for p in (out / "runs").iterdir()]
    assert len(run_dirs) == 20
    summary = read_json(run_dirs[0] / "summary.json")
    assert {"time_to_target", "stop_reason", "mean_delay", "frac_clipped"} <= set(
        summary
    )

    # Rerun: everything is loaded, nothing is executed again.
    calls.clear()
    run_experiment(quick, out, progress=False, workers=1)
    assert calls == []

    # A killed run: its directory lacks summary.json, and a temp dir was left behind.
    victim = out / "runs" / run_dirs[3].name
    (victim / "summary.json").unlink()
    leftover = out / "runs" / ".tmp-killed-run"
    leftover.mkdir()
    write_csv_atomic(leftover / ARRIVALS_FILE, {"time": [1.0]})
    run_experiment(quick, out, progress=False, workers=1)
    # The lost run is recomputed with the batch it belongs to (its event family,
    # seed and timing: clipped ASGD and Ringmaster here), and nothing else is.
    specs = {s.run_id: s for s in expand(quick)}
    batch = [
        r for r, s in specs.items() if batch_key(s) == batch_key(specs[victim.name])
    ]
    assert victim.name in calls and sorted(calls) == sorted(batch)
    assert len({specs[r].policy for r in batch}) == 2
    assert (victim / "summary.json").is_file()
    assert not leftover.exists()


def test_parallel_matches_in_process(tmp_path: Path) -> None:
    cfg = load_config(QUICK, ["seeds=[0]", "sweep={timing.slow_time: [4]}"])
    a = run_experiment(cfg, tmp_path / "a", progress=False, workers=1)
    b = run_experiment(cfg, tmp_path / "b", progress=False, workers=2)
    for run in (a / "runs").iterdir():
        sa = read_json(run / "summary.json")
        sb = read_json(b / "runs" / run.name / "summary.json")
        assert sa["final"] == sb["final"]
        assert sa["time_to_target"] == sb["time_to_target"]


def test_record_arrivals_false(tmp_path: Path) -> None:
    cfg = load_config(
        QUICK, ["record_arrivals=false", "seeds=[0]", "sweep={timing.slow_time: [2]}"]
    )
    out = run_experiment(cfg, tmp_path / "r", progress=False, workers=1)
    build_report(out)
    runs = list((out / "runs").iterdir())
    assert runs and all(arrivals_path(r) is None for r in runs)
    assert (out / "report.md").is_file()
    ids: list[Any] = json.loads((out / "runs.json").read_text())
    assert len(ids) == len(runs)


def test_arrivals_are_gzipped_deterministic_and_legacy_csv_is_read(
    tmp_path: Path, quick: ExperimentConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = execute(expand(quick)[0])
    a = save_run(outcome, tmp_path / "a")
    path = arrivals_path(a)
    assert path == a / ARRIVALS_FILE and not (a / LEGACY_ARRIVALS_FILE).exists()
    with gzip.open(path, "rt", encoding="utf-8") as fh:  # a plain gzip file
        assert fh.readline().rstrip("\r\n").split(",") == list(outcome.arrivals)
    columns = read_columns(path)
    assert list(columns) == list(outcome.arrivals)
    for name, col in outcome.arrivals.items():
        assert len(col) > 0
        np.testing.assert_array_equal(columns[name], np.asarray(col, np.float64))

    # Same data, same bytes, whatever the clock says (no time stamp in the header).
    monkeypatch.setattr(gzip.time, "time", lambda: 1e9)
    b = save_run(outcome, tmp_path / "b")
    assert (b / ARRIVALS_FILE).read_bytes() == path.read_bytes()

    # A run written before compression keeps its plain arrivals.csv: still found.
    (a / ARRIVALS_FILE).unlink()
    write_csv_atomic(a / LEGACY_ARRIVALS_FILE, outcome.arrivals)
    assert arrivals_path(a) == a / LEGACY_ARRIVALS_FILE
    legacy = read_columns(a / LEGACY_ARRIVALS_FILE)
    for name, col in columns.items():
        np.testing.assert_array_equal(legacy[name], col)
