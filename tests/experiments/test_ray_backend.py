"""The experiment layer on Ray (clipasync run --backend ray / resume / trace).

:func:`~clipasync.experiments.ray_backend.run_experiment_on_ray` starts its own Ray
session; the module ends it, so the runtime's Ray tests start theirs afresh.
"""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from clipasync.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def _shutdown_ray():
    yield
    ray.shutdown()


TINY = (
    "name: tiny\n"
    "seeds: [0]\n"
    "problem: {name: least_squares, num_samples: 200, dim: 8, batch_size: 16}\n"
    "timing: {kind: two_speed, num_fast: 1, num_slow: 1, slow_time: 3}\n"
    "methods:\n"
    "  clipped: {policy: async_sgd, stepsize: [0.5], max_norm: [1.0]}\n"
    "  vanilla: {policy: async_sgd, stepsize: [0.5]}\n"
    "  fedbuff: {policy: fedbuff, stepsize: 1.0, buffer_size: 2, local_steps: 2,"
    " local_stepsize: 0.1, client_max_norm: 1.0}\n"
    "stop: {max_time: 12}\n"
    "eval_every: 3\n"
)


def _tiny_config(tmp_path):
    from clipasync.experiments.loading import load_config

    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return load_config(path, [])


def test_experiment_runs_on_ray_resumes_and_exports_a_trace(tmp_path):
    from clipasync.experiments.ray_backend import (
        export_trace,
        resume_experiment,
        run_experiment_on_ray,
    )
    from clipasync.experiments.rundir import load_runs
    from clipasync.reports.report import build_ray_report

    out = run_experiment_on_ray(
        _tiny_config(tmp_path),
        tmp_path / "out",
        time_unit_s=0.02,
        checkpoint_every=5,
        source=(TINY, [], None),
    )
    build_ray_report(out)  # the runner no longer builds the report (the CLI does)
    runs = load_runs(out)
    assert {r["method"] for r in runs} == {"clipped", "vanilla", "fedbuff"}
    for r in runs:
        assert r["backend"] == "ray" and r["worker_failures"] == 0
        # Reported in time units: 12 units of 20 ms, not 0.24 s; final.time too
        # (the last evaluation, every 3 units), and the seconds apart.
        assert 6 <= r["sim_time"] <= 12.5
        assert 3 <= r["final"]["time"] <= r["sim_time"]
        assert r["wall_clock_time"] == pytest.approx(r["sim_time"] * 0.02)
        assert r["time_fields"]["final.time"] == "time units"
        assert 0 < r["startup_s"] < 60
        assert r["version"] > 0
    report = (out / "report.md").read_text()
    assert "Sim-to-real check" in report
    assert "| start-up (s) |" in report  # the report states the start-up time

    # A driver killed mid-run: its summary is missing but its checkpoint is there.
    victim = out / "runs" / runs[0]["run_id"]
    version_before = runs[0]["version"]
    (victim / "summary.json").unlink()
    resume_experiment(out)
    resumed = {r["run_id"]: r for r in load_runs(out)}
    assert resumed[runs[0]["run_id"]]["version"] >= version_before
    assert len(resumed) == 3

    data = export_trace(out / "runs" / runs[1]["run_id"])
    from clipasync.timing import TraceTimes

    trace = TraceTimes.from_csv(data["trace"])
    assert trace.num_workers == 2
    assert data["measured_rate"] > 0 and data["simulated_rate"] > 0


def test_resume_refuses_a_simulated_experiment(tmp_path):
    from clipasync.experiments.ray_backend import resume_experiment

    (tmp_path / "runs").mkdir()
    with pytest.raises(ConfigError, match="not a Ray experiment"):
        resume_experiment(tmp_path)
