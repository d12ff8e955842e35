"""``clipasync run --backend ray`` and ``clipasync resume`` write the Ray report.

The experiments floor only runs the grid; the command line builds the report
afterwards, and for Ray that report ends with the sim-to-real section.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from clipasync.cli.app import app  # noqa: E402
from clipasync.experiments.rundir import load_runs  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = (
    "name: tiny\n"
    "seeds: [0]\n"
    "problem: {name: least_squares, num_samples: 200, dim: 8, batch_size: 16}\n"
    "timing: {kind: two_speed, num_fast: 1, num_slow: 1, slow_time: 3}\n"
    "methods:\n"
    "  clipped: {policy: async_sgd, stepsize: [0.5], max_norm: [1.0]}\n"
    "stop: {max_time: 12}\n"
    "eval_every: 3\n"
)

SECTION = "## Sim-to-real check"


@pytest.fixture(autouse=True)
def _shutdown_ray():
    yield
    ray.shutdown()


def test_run_on_ray_then_resume_rebuild_the_report_with_one_sim_to_real_section(
    tmp_path: Path,
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "run",
            str(config),
            "--backend",
            "ray",
            "--time-unit",
            "0.02",
            "--checkpoint-every",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(out)
    (run,) = load_runs(out)
    report = (out / "report.md").read_text()
    assert report.count(SECTION) == 1
    # The section's table has one row per finished run, named by its run id.
    assert f"| {run['run_id']} |" in report.split(SECTION)[1]
    assert (out / "summary.csv").is_file() and (out / "headline.png").is_file()

    # A driver killed before the summary was written: resume finishes the run and
    # rebuilds the report from scratch (still one section, not two).
    (out / "runs" / run["run_id"] / "summary.json").unlink()
    (out / "report.md").unlink()
    res = runner.invoke(app, ["resume", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(out)
    assert [r["run_id"] for r in load_runs(out)] == [run["run_id"]]
    report = (out / "report.md").read_text()
    assert report.count(SECTION) == 1
    assert f"| {run['run_id']} |" in report.split(SECTION)[1]
