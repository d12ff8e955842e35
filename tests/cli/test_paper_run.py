"""A paper config end to end through ``clipasync run``: Fashion-MNIST, quick profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipasync.cli.app import app
from tests.conftest import ROOT

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
