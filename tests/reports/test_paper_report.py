"""Report additions of the paper configs: the paper table, the tail index, compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipasync.cli.app import app
from clipasync.experiments import ExperimentConfig, load_config, run_experiment
from clipasync.reports.compare import compare_reports
from clipasync.reports.report import build_report
from tests.conftest import ROOT

EXPERIMENTS = ROOT / "experiments"
runner = CliRunner()


def _quick_config() -> ExperimentConfig:
    """quick.yaml plus a paper table and tail diagnostics (seconds, least squares)."""
    return load_config(
        EXPERIMENTS / "quick.yaml",
        [
            "seeds=[0]",
            "workers=1",
            "paper_reference={'D=4': {vanilla: 1.8, ringmaster: 1.5}}",
            "diagnostics={tail_index: {num_samples: 200, methods: all}}",
        ],
    )


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("paper") / "q"
    out = run_experiment(_quick_config(), out, progress=False)
    build_report(out)
    return out


def test_report_has_paper_table_and_tail_index(quick_report: Path) -> None:
    out = quick_report
    text = (out / "report.md").read_text()
    assert "Measured vs the paper's reported speedups" in text
    assert "How heavy-tailed is the gradient noise?" in text
    diag = json.loads((out / "diagnostics.json").read_text())["tail_index"]
    ats = {e["at"] for e in diag}
    assert ats == {"init", "final"}
    assert all(e["theta"] is not None for e in diag)
    with open(out / "paper_comparison.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["baseline"] for r in rows} == {"vanilla", "ringmaster"}
    # A rerun reuses the runs and the cached diagnostics (no report rebuild).
    before = (out / "diagnostics.json").read_text()
    run_experiment(_quick_config(), out, progress=False)
    assert (out / "diagnostics.json").read_text() == before


def test_compare_cli(quick_report: Path, tmp_path: Path) -> None:
    out = quick_report
    table, path = compare_reports([out, out], tmp_path / "cmp")
    assert "paper 1.8×" in table and path is not None
    header = table.splitlines()[0].split("|")
    assert len(header) == len(set(header)) + 1  # no baseline column twice
    assert (tmp_path / "cmp" / "comparison.png").is_file()
    res = runner.invoke(app, ["compare", str(out), "--out", str(tmp_path / "c2")])
    assert res.exit_code == 0, res.output
    assert "| quick | D=4 | clipped |" in res.output
    res = runner.invoke(app, ["compare", str(tmp_path)])
    assert res.exit_code == 2 and "not a report directory" in res.output
