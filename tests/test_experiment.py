"""Grid expansion, run ids, end-to-end runs, resumability and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clipasync import experiment
from clipasync.config import ExperimentConfig, load_config
from clipasync.experiment import RunSpec, build_policy, expand, run_experiment
from clipasync.io import atomic_dir, read_json, write_csv_atomic

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "experiments" / "quick.yaml"


@pytest.fixture
def quick() -> ExperimentConfig:
    return load_config(QUICK)


def test_grid_expansion_counts(quick: ExperimentConfig) -> None:
    specs = expand(quick)
    per_point = sum(len(m.grid()) for m in quick.methods.values()) * len(quick.seeds)
    assert len(specs) == len(quick.sweep_points()) * per_point == 20
    stragglers = load_config(ROOT / "experiments" / "stragglers.yaml")
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
        "async_sgd": {"stepsize": 0.1, "max_norm": 1.0},
        "ringmaster": {"stepsize": 0.1, "max_delay": 4},
        "rennala": {"stepsize": 0.1, "batch_size": 2},
        "minibatch": {"stepsize": 0.1, "delay_adaptive": True},
    }
    for policy, hyper in names.items():
        assert build_policy(policy, hyper).name in (policy, "async_sgd")


def _count_executions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = experiment.execute

    def counting(spec: RunSpec) -> experiment.RunOutcome:
        calls.append(spec.run_id)
        return real(spec)

    monkeypatch.setattr(experiment, "execute", counting)
    return calls


def test_end_to_end_and_resume(
    tmp_path: Path, quick: ExperimentConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_executions(monkeypatch)
    out = run_experiment(quick, tmp_path / "r", progress=False, workers=1)
    assert len(calls) == 20
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
    (leftover / "arrivals.csv").write_text("time\n1.0\n")
    run_experiment(quick, out, progress=False, workers=1)
    assert calls == [victim.name]
    assert (victim / "summary.json").is_file()
    assert not leftover.exists()


def test_parallel_matches_in_process(tmp_path: Path) -> None:
    cfg = load_config(QUICK, ["seeds=[0]", "sweep={timing.slow_time: [4]}"])
    a = run_experiment(cfg, tmp_path / "a", progress=False, workers=1, report=False)
    b = run_experiment(cfg, tmp_path / "b", progress=False, workers=2, report=False)
    for run in (a / "runs").iterdir():
        sa = read_json(run / "summary.json")
        sb = read_json(b / "runs" / run.name / "summary.json")
        assert sa["final"] == sb["final"]
        assert sa["time_to_target"] == sb["time_to_target"]


def test_atomic_dir_leaves_nothing_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "run"
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        write_csv_atomic(tmp / "arrivals.csv", {"time": [1.0, 2.0]})
        raise RuntimeError("killed")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_record_arrivals_false(tmp_path: Path) -> None:
    cfg = load_config(
        QUICK, ["record_arrivals=false", "seeds=[0]", "sweep={timing.slow_time: [2]}"]
    )
    out = run_experiment(cfg, tmp_path / "r", progress=False, workers=1)
    runs = list((out / "runs").iterdir())
    assert runs and not any((r / "arrivals.csv").exists() for r in runs)
    assert (out / "report.md").is_file()
    ids: list[Any] = json.loads((out / "runs.json").read_text())
    assert len(ids) == len(runs)
