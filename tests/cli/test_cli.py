"""The command line: run, report, list, timing, and one-line errors (exit 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipasync.cli.app import app
from tests.conftest import ROOT

QUICK = str(ROOT / "experiments" / "quick.yaml")

runner = CliRunner()


def test_run_quick_then_report(tmp_path: Path) -> None:
    out = tmp_path / "q"
    res = runner.invoke(
        app,
        [
            "run",
            QUICK,
            "--out",
            str(out),
            "--workers",
            "1",
            "--no-progress",
            "--set",
            "seeds=[0]",
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(out)
    assert (out / "report.md").is_file()
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith("report.md")


def test_list_reads_registries() -> None:
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0, res.output
    for name in (
        "async_sgd",
        "ringmaster",
        "rennala",
        "minibatch",
        "picky_sgd",
        "mindflayer",
        "two_speed",
        "pareto",
        "least_squares",
        "sub_weibull",
    ):
        assert name in res.output


def test_timing_options_and_config() -> None:
    res = runner.invoke(app, ["timing", "--kind", "two_speed", "--slow-time", "8"])
    assert res.exit_code == 0, res.output
    assert "15.00" in res.output  # mean delay n - 1 with 16 workers
    res = runner.invoke(app, ["timing", QUICK, "--events", "1000"])
    assert res.exit_code == 0, res.output
    assert "slow_time=4" in res.output


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path(QUICK).read_text().replace("policy: ringmaster", "policy: nope")
    )
    res = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: config error at methods.ringmaster.policy:")
    res = runner.invoke(app, ["timing", "--kind", "nope"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ")


def test_report_on_missing_dir_is_an_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a run directory" in res.stderr


def test_run_no_batch_runs_every_configuration_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []
    cli_app = sys.modules["clipasync.cli.app"]  # the package re-exports the Typer app

    def fake_run(cfg: object, target: Path, **kwargs: object) -> Path:
        seen.append(kwargs["batch"])
        return target

    monkeypatch.setattr(cli_app, "run_experiment", fake_run)
    monkeypatch.setattr(cli_app, "build_report", lambda path: path)
    for flags, batch in (([], None), (["--no-batch"], False)):
        args = ["run", QUICK, "--out", str(tmp_path / "q"), "--no-progress", *flags]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert seen[-1] is batch  # None: the file's batch_grid (default true)
