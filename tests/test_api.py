"""The one-call Python entry point writes the CLI's report directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clipasync.api import compare, load_weights
from clipasync.cli.app import app
from clipasync.errors import ConfigError
from tests.cli.byo_project import forget, write_project

torch = pytest.importorskip("torch")

METHODS = {"clipped": {"policy": "async_sgd", "stepsize": [0.1], "max_norm": [1.0]}}
TIMING = {"kind": "two_speed", "num_fast": 2, "num_slow": 2, "slow_time": 4}


@pytest.fixture
def project(tmp_path: Path):
    mod, factory, torch_cfg = write_project(tmp_path / "proj")
    yield mod, factory, torch_cfg
    forget(mod, tmp_path / "proj")


def records(out: Path) -> dict[str, object]:
    found: dict[str, object] = {"summary.csv": (out / "summary.csv").read_bytes()}
    for d in sorted((out / "runs").iterdir()):
        s = json.loads((d / "summary.json").read_text())
        s.pop("wall_time")
        s["problem"].pop("root", None)
        found[d.name] = (s, (d / "arrivals.csv.gz").read_bytes())
    return found


@pytest.mark.slow
def test_compare_writes_what_the_cli_writes(project, tmp_path, monkeypatch):
    mod, factory, _ = project
    cli_out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        ["run", str(factory), "--out", str(cli_out), "--no-progress", "--workers", "1"],
    )
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(factory.parent)  # an import path is found from the cwd
    api_out = compare(
        f"{mod}:make",
        METHODS,
        args={"dim": 3},
        timing=TIMING,
        stop={"max_time": 20},
        eval_every=5,
        seeds=[0, 1],
        name="byo_factory",
        out=tmp_path / "api",
        workers=2,
    )
    assert (api_out / "report.md").is_file()
    assert records(api_out) == records(cli_out)


def test_a_problem_object_runs_in_process_and_gives_its_weights_back(
    project, tmp_path, monkeypatch
):
    from clipasync.problems import TorchProblem

    mod, factory, _ = project
    monkeypatch.syspath_prepend(str(factory.parent))
    module = __import__(mod)
    data = np.load(factory.parent / "data" / "train.npz")
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    torch.manual_seed(0)
    problem = TorchProblem(
        module.MLP(),
        torch.nn.functional.cross_entropy,
        (x, y),
        batch_size=8,
        metrics=["accuracy"],
    )
    out = compare(
        problem,
        METHODS,
        timing=TIMING,
        stop={"max_time": 12},
        eval_every=4,
        out=tmp_path / "obj",
    )
    (run_dir,) = (out / "runs").iterdir()
    final = json.loads((run_dir / "summary.json").read_text())["final"]
    model = load_weights(module.MLP(), out).eval()  # one call, from the directory
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(model(x), y))
    assert loss == pytest.approx(final["loss"], rel=1e-6)


def test_a_problem_object_refuses_worker_processes_before_writing(project, tmp_path):
    from clipasync.problems import LeastSquares

    problem = LeastSquares(num_samples=20, dim=3, batch_size=4)
    with pytest.raises(ConfigError, match="runs on the simulator with workers=1"):
        compare(
            problem,
            METHODS,
            timing=TIMING,
            stop={"max_time": 5},
            out=tmp_path / "never",
            workers=2,
        )
    with pytest.raises(ConfigError, match="no module named 'nope_mod'"):
        compare(
            "nope_mod:make",
            METHODS,
            timing=TIMING,
            stop={"max_time": 5},
            out=tmp_path / "never",
        )
    assert not (tmp_path / "never").exists()
