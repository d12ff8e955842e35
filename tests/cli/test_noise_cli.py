"""Smoke tests of ``clipasync noise``, ``theory`` and ``hp`` on quick.yaml."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clipasync.cli.app import app
from tests.conftest import ROOT

QUICK = str(ROOT / "experiments" / "quick.yaml")

runner = CliRunner()


def test_noise_writes_json_and_plot(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "noise",
            QUICK,
            "--samples",
            "500",
            "--at",
            "sgd:20",
            "--at",
            "optimum",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "theta" in res.output and "sgd:20" in res.output
    data = json.loads((tmp_path / "noise.json").read_text())
    labels = [c["label"] for c in data["checkpoints"]]
    assert labels == ["sgd:20", "optimum"]
    # k = n/10 (default); θ̂ may be <= 0 for a bounded-looking tail (optimum).
    assert all(c["k"] == 50 for c in data["checkpoints"])
    assert (tmp_path / "noise_tails.png").stat().st_size > 0


def test_noise_bad_checkpoint_exits_2(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        ["noise", QUICK, "--samples", "100", "--at", "final", "--out", str(tmp_path)],
    )
    assert res.exit_code == 2
    assert res.stderr.startswith("error: unknown checkpoint 'final'")


def test_theory_from_options_and_estimated() -> None:
    res = runner.invoke(
        app,
        [
            "theory",
            "--L",
            "1",
            "--delta",
            "1",
            "--sigma",
            "0.5",
            "--theta",
            "2",
            "--eps",
            "0.1",
            "--slow-time",
            "8",
            "--events",
            "20000",
        ],
    )
    assert res.exit_code == 0, res.output
    out = res.output
    assert "update rate sum 1/tau_i" in out and "RECONSTRUCTED" in out
    assert "simulated max delay" in out and "71" in out  # slow mean delay 8D + 7
    res = runner.invoke(
        app,
        [
            "theory",
            "--config",
            QUICK,
            "--estimate",
            "--samples",
            "500",
            "--events",
            "1000",
            "--delta-prob",
            "0.01",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "estimated (power iteration at x0)" in res.output
    assert "Thm 4.3" in res.output
    res = runner.invoke(app, ["theory", "--estimate"])
    assert res.exit_code == 2 and "needs --config" in res.stderr


def test_hp_quantiles_and_censoring(tmp_path: Path) -> None:
    out = tmp_path / "hp"
    res = runner.invoke(
        app,
        [
            "hp",
            QUICK,
            "--seeds",
            "3",
            "--out",
            str(out),
            "--workers",
            "1",
            "--no-progress",
            "--set",
            "seeds=[0]",
            "--set",
            "stop.max_time=20",
            "--set",
            "sweep={timing.slow_time: [4]}",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "never reached" in res.output
    csv = (out / "hp_summary.csv").read_text().splitlines()
    assert csv[0].startswith("point,method")
    assert len(csv) == 1 + 3  # one row per method
    assert (out / "hp_ecdf.png").is_file() and (out / "pilot").is_dir()
    assert "time p50" in (out / "hp_report.md").read_text()
    res = runner.invoke(
        app, ["hp", QUICK, "--no-pilot", "--seeds", "2", "--out", str(out / "x")]
    )
    assert res.exit_code == 2 and "grid points" in res.stderr
