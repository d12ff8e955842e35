"""The paper-reproduction configs: profiles, registry entries, report additions."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipasync.cli.app import app
from clipasync.errors import ConfigError
from clipasync.experiments import ExperimentConfig, expand, load_config, run_experiment
from clipasync.reports.compare import compare_reports
from clipasync.reports.report import build_report

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
PAPER_CONFIGS = [
    "paper_fig2_fashion_mnist.yaml",
    "paper_fig3_kjv_lstm.yaml",
    "paper_fig4_label_skew.yaml",
]
runner = CliRunner()


def _require_fashion_mnist() -> None:
    """Skip without the Debian data, except in CI where `make setup` installs it."""
    from clipasync.problems.datasets import fashion_mnist as fm

    if all((fm.default_data_dir() / n).is_file() for n in fm.FILES.values()):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("dataset-fashion-mnist is missing in CI: make setup installs it")
    pytest.skip("Debian package dataset-fashion-mnist is not installed")


@pytest.mark.parametrize("name", PAPER_CONFIGS)
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_paper_config_loads_with_each_profile(name: str, profile: str) -> None:
    cfg = load_config(EXPERIMENTS / name, profile=profile)
    assert cfg.profile == profile
    assert cfg.problem.name in ("fashion_mnist_cnn", "kjv_char_lstm")
    assert cfg.stop.target is not None and cfg.stop.max_time is not None
    assert cfg.paper_reference and cfg.diagnostics and cfg.diagnostics.tail_index
    assert cfg.timing.num_fast == 8 and cfg.timing.num_slow == 8
    specs = expand(cfg)
    assert specs
    if profile == "full":
        assert cfg.seeds == [0, 1, 2]
        assert cfg.sweep == {"timing.slow_time": [4, 8]}
        clipped = cfg.methods[cfg.reference_method or ""]
        assert clipped.max_norm is not None and len(clipped.max_norm) == 4
        assert len(clipped.stepsize) >= 7
    else:
        assert len(specs) <= 24


def test_default_profile_is_quick_and_set_overrides_profile() -> None:
    path = EXPERIMENTS / "paper_fig2_fashion_mnist.yaml"
    assert load_config(path).profile == "quick"
    cfg = load_config(path, ["seeds=[5]"], profile="full")
    assert cfg.seeds == [5] and cfg.profile == "full"


def test_unknown_profile_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        load_config(EXPERIMENTS / "paper_fig2_fashion_mnist.yaml", profile="huge")


def test_label_skew_partition_from_a_mapping() -> None:
    from clipasync.problems import _label_skew
    from clipasync.problems.paper_tasks import LabelSkew

    got = _label_skew({"kind": "dirichlet", "alpha": 0.5, "min_size": 50})
    assert got == LabelSkew(num_workers=16, alpha=0.5, min_size=50)
    with pytest.raises(ConfigError, match="unknown key 'beta'"):
        _label_skew({"kind": "dirichlet", "beta": 1})


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


@pytest.mark.slow
def test_fashion_mnist_quick_profile_end_to_end(tmp_path: Path) -> None:
    _require_fashion_mnist()
    out = tmp_path / "fig2"
    tiny = [
        "problem.subset=600",
        "problem.test_subset=100",
        "problem.eval_subset=64",
        "problem.width=4",
        "problem.hidden=8",
        "problem.batch_size=16",
        "sweep={timing.slow_time: [4]}",
        "stop.max_time=6",
        "eval_every=3",
        "methods.clipped.stepsize=[0.25]",
        "methods.clipped.max_norm=[1]",
        "methods.vanilla.stepsize=[0.0625]",
        "methods.delay_adaptive.stepsize=[0.0625]",
        "methods.ringmaster.stepsize=[0.0625]",
        "diagnostics.tail_index.num_samples=40",
    ]
    args = ["run", str(EXPERIMENTS / PAPER_CONFIGS[0]), "--profile", "quick"]
    args += ["--out", str(out), "--no-progress", "--workers", "1"]
    for o in tiny:
        args += ["--set", o]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    text = (out / "report.md").read_text()
    assert "Measured vs the paper's reported speedups" in text
    assert "How heavy-tailed is the gradient noise?" in text
    assert "| init |" in text and "| final |" in text
    assert (out / "headline.png").is_file()
