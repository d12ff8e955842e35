"""Your own problem through ``clipasync run`` on the simulator: an import-path
factory and a declarative PyTorch problem, from a folder outside the package."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clipasync.cli.app import app
from tests.cli.byo_project import forget, write_project

torch = pytest.importorskip("torch")


@pytest.fixture
def project(tmp_path: Path):
    mod, factory, torch_cfg = write_project(tmp_path / "proj")
    yield mod, factory, torch_cfg
    forget(mod, tmp_path / "proj")


def run(config: Path, out: Path, *extra: str) -> tuple[int, str]:
    res = CliRunner().invoke(
        app, ["run", str(config), "--out", str(out), "--no-progress", *extra]
    )
    return res.exit_code, res.output


def runs_of(out: Path) -> dict[str, dict[str, object]]:
    """Each run's summary (without its wall time) and the bytes of its records."""
    found = {}
    for d in sorted((out / "runs").iterdir()):
        summary = json.loads((d / "summary.json").read_text())
        summary.pop("wall_time")
        found[d.name] = {
            "summary": summary,
            "arrivals": (d / "arrivals.csv.gz").read_bytes(),
            "evals": (d / "evals.csv").read_bytes(),
        }
    return found


@pytest.mark.slow
@pytest.mark.parametrize("form", ["factory", "torch"])
def test_user_problem_runs_identically_with_one_and_two_processes(
    project, tmp_path, form
):
    _, factory, torch_cfg = project
    config = factory if form == "factory" else torch_cfg
    code1, out1 = run(config, tmp_path / "w1", "--set", "workers=1")
    code2, out2 = run(config, tmp_path / "w2", "--set", "workers=2")  # processes
    assert code1 == 0, out1
    assert code2 == 0, out2
    one, two = runs_of(tmp_path / "w1"), runs_of(tmp_path / "w2")
    assert len(one) == 2 and one == two  # same run ids, bit-identical records
    assert (tmp_path / "w2" / "report.md").is_file()
    summary = next(iter(one.values()))["summary"]
    assert summary["final"]["loss"] < summary["initial"]["loss"]  # type: ignore[index]


@pytest.mark.slow
def test_report_of_a_user_problem_imports_nothing(project, tmp_path):
    mod, factory, _ = project
    assert run(factory, tmp_path / "out", "--workers", "1")[0] == 0
    resolved = (tmp_path / "out" / "config.resolved.yaml").read_text()
    assert f"{mod}:make" in resolved  # the import path is recorded as data
    (factory.parent / f"{mod}.py").unlink()
    forget(mod, factory.parent)
    res = CliRunner().invoke(app, ["report", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output


def test_run_ids_do_not_depend_on_where_the_project_lies(project, tmp_path):
    from clipasync.experiments.grid import expand
    from clipasync.experiments.loading import load_config

    _, factory, _ = project
    moved = tmp_path / "moved"
    shutil.copytree(factory.parent, moved)
    a = [s.run_id for s in expand(load_config(factory))]
    b = [s.run_id for s in expand(load_config(moved / "factory.yaml"))]
    assert a == b
    assert load_config(moved / "factory.yaml").problem.kwargs()["root"] == str(moved)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("factory.yaml", ":make", ":mkae"), "has no 'mkae'"),
        (("factory.yaml", "byo_user", "nosuch_user"), "no module named 'nosuch_user"),
        (("torch.yaml", "data/train.npz", "data/none.npz"), "data file not found"),
        (("torch.yaml", "hidden: 8}", "hidden: 8, features: 4}"), "(2, 5)"),
        (("torch.yaml", "loss: cross_entropy", "loss: mse"), "does not fit loss 'mse'"),
    ],
)
def test_a_bad_user_problem_is_one_line_and_leaves_no_directory(
    project, tmp_path, edit, message
):
    _, factory, _ = project
    name, old, new = edit
    path = factory.parent / name
    path.write_text(path.read_text().replace(old, new, 1))
    out = tmp_path / "never"
    code, output = run(path, out)
    assert code == 2
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert not out.exists()


@pytest.mark.slow
def test_saved_weights_reproduce_the_evaluated_metric(project, tmp_path):
    mod, _, torch_cfg = project
    assert run(torch_cfg, tmp_path / "out", "--workers", "1")[0] == 0
    run_dir = sorted((tmp_path / "out" / "runs").iterdir())[0]
    final = json.loads((run_dir / "summary.json").read_text())["final"]
    module = __import__(mod)
    model = module.MLP(hidden=8)
    model.load_state_dict(torch.load(run_dir / "weights.pt", weights_only=True))
    data = np.load(torch_cfg.parent / "data" / "train.npz")
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    model.eval()
    with torch.no_grad():
        out = model(x)
        loss = float(torch.nn.functional.cross_entropy(out, y))
        accuracy = float((out.argmax(-1) == y).double().mean())
    # evaluate() uses min(eval_subset, N) = all 60 training rows.
    assert loss == pytest.approx(final["loss"], rel=1e-6)
    assert accuracy == final["accuracy"]


def test_a_resumed_experiment_keeps_the_recorded_project_folder(project, tmp_path):
    from clipasync.experiments.grid import expand
    from clipasync.experiments.loading import load_config, saved_root
    from clipasync.experiments.rundir import prepare_out_dir

    _, factory, _ = project
    out = tmp_path / "out"
    prepare_out_dir(load_config(factory), out)
    # Resume reads the source copy kept in the run directory, not the original.
    copy = out / "config.source.yaml"
    copy.write_text(factory.read_text())
    assert saved_root(out) == str(factory.parent.resolve())
    resumed = load_config(copy, root=saved_root(out))
    assert resumed.problem.kwargs()["root"] == str(factory.parent.resolve())
    assert [s.run_id for s in expand(resumed)] == [
        s.run_id for s in expand(load_config(factory))
    ]
