"""Your own problem through ``clipasync run --backend ray``: on a local Ray and on
a two-node ``ray.cluster_utils.Cluster``, where the user's folder reaches every
actor as the job's ``working_dir`` (Ray ``runtime_env``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")
pytest.importorskip("torch")

from clipasync.cli.app import app  # noqa: E402
from tests.cli.byo_project import forget, write_project  # noqa: E402
from tests.conftest import two_node_cluster  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: Two workers (one per node of the cluster), one seed, a short run.
SMALL = [
    "--set",
    "seeds=[0]",
    "--set",
    "timing.num_fast=1",
    "--set",
    "timing.num_slow=1",
    "--time-unit",
    "0.01",
    "--no-progress",
]


@pytest.fixture
def project(tmp_path: Path):
    mod, factory, torch_cfg = write_project(tmp_path / "proj")
    yield mod, factory, torch_cfg
    forget(mod, tmp_path / "proj")


def run_on_ray(config: Path, out: Path, *extra: str) -> dict[str, object]:
    res = CliRunner().invoke(
        app, ["run", str(config), "--backend", "ray", "--out", str(out), *SMALL, *extra]
    )
    assert res.exit_code == 0, res.output
    assert (out / "report.md").is_file()
    (run_dir,) = (out / "runs").iterdir()
    summary: dict[str, object] = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "ray"
    return summary


def test_user_problems_run_on_a_local_ray(project, tmp_path, monkeypatch):
    from clipasync.api import compare

    mod, factory, torch_cfg = project
    if ray.is_initialized():
        ray.shutdown()
    try:
        quad = run_on_ray(factory, tmp_path / "factory")
        net = run_on_ray(torch_cfg, tmp_path / "torch")
        monkeypatch.chdir(factory.parent)
        api = compare(
            f"{mod}:make",
            {"clipped": {"policy": "async_sgd", "stepsize": [0.1], "max_norm": [1.0]}},
            timing={"kind": "two_speed", "num_fast": 1, "num_slow": 1, "slow_time": 4},
            stop={"max_time": 20},
            eval_every=5,
            out=tmp_path / "api",
            backend="ray",
            time_unit_s=0.01,
        )
    finally:
        ray.shutdown()
    assert "## Sim-to-real check" in (api / "report.md").read_text()
    assert quad["final"]["loss"] < quad["initial"]["loss"]  # type: ignore[index]
    assert net["final"]["loss"] < net["initial"]["loss"]  # type: ignore[index]
    assert (
        (tmp_path / "torch" / "runs")
        .iterdir()
        .__next__()
        .joinpath("weights.pt")
        .is_file()
    )


def test_user_problems_run_on_a_two_node_cluster_via_working_dir(project, tmp_path):
    mod, factory, torch_cfg = project
    with two_node_cluster() as cluster:
        address = ["--address", cluster.address]
        quad = run_on_ray(factory, tmp_path / "factory", *address)
        net = run_on_ray(torch_cfg, tmp_path / "torch", *address)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2

        @ray.remote(num_cpus=0)
        def where() -> str:
            # A fresh worker of this job: only the runtime_env put the module here.
            return str(__import__(mod).__file__)

        shipped = ray.get(where.remote())
    assert not shipped.startswith(str(factory.parent))  # a copy, not the original
    assert "runtime_resources" in shipped and shipped.endswith(f"{mod}.py")
    assert quad["final"]["loss"] < quad["initial"]["loss"]  # type: ignore[index]
    assert net["final"]["loss"] < net["initial"]["loss"]  # type: ignore[index]
