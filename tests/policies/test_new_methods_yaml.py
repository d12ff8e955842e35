"""The methods added for the comparisons researchers run (Ringleader, Malenia,
m-synchronous rounds, FedAvg, server momentum, DC-ASGD) go from a YAML file through
a run to the report and ``clipasync list``, via their registry entries alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from clipasync.cli.app import app
from clipasync.experiments import expand, load_config, run_experiment
from clipasync.experiments.rundir import load_runs
from clipasync.policies.registry import lookup, names
from clipasync.reports.report import build_report
from tests.conftest import tiny_experiment

NEW = ("ringleader", "malenia", "m_sync", "fedavg", "async_momentum", "dc_asgd")

METHODS: dict[str, dict[str, Any]] = {
    "ringleader": {"policy": "ringleader", "stepsize": 0.2, "max_norm": [1.0]},
    "malenia": {"policy": "malenia", "stepsize": 0.2, "batch_size": 6},
    "first_two": {"policy": "m_sync", "stepsize": 0.2, "quorum": 2},
    "fedavg": {
        "policy": "fedavg",
        "local_stepsize": 0.05,
        "local_steps": 2,
        "clients_per_round": 2,
    },
    "nesterov": {
        "policy": "async_momentum",
        "stepsize": 0.05,
        "max_norm": 1.0,
        "server_momentum": 0.5,
        "nesterov": True,
    },
    "dc": {"policy": "dc_asgd", "stepsize": 0.1, "compensation": [0.0, 0.5]},
}

LABELS = {
    "ringleader": "γ=0.2, c=1",
    "malenia": "γ=0.2, S=6",
    "first_two": "γ=0.2, m=2",
    "fedavg": "γ=1, η_l=0.05, Q=2, 2 clients/round",
    "nesterov": "γ=0.05, c=1, β=0.5, Nesterov",
    "dc": "γ=0.1, λ=",  # the best of the two λ
}


def test_the_new_methods_are_registered_with_their_axes() -> None:
    assert set(NEW) <= set(names())
    assert lookup("malenia").tags == (
        ("stepsize", "g"),
        ("max_norm", "c"),
        ("batch_size", "S"),
    )
    assert lookup("m_sync").axes == ("stepsize", "max_norm", "quorum")
    assert lookup("fedavg").federated and lookup("fedavg").needs_all_workers
    assert not lookup("async_momentum").needs_all_workers


def test_the_new_methods_run_from_yaml_to_report(tmp_path: Path) -> None:
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(tiny_experiment(METHODS), allow_unicode=True))
    cfg = load_config(path)
    specs = expand(cfg)
    assert sorted({s.method for s in specs}) == sorted(METHODS)
    assert sum(s.method == "dc" for s in specs) == 2  # the λ axis
    out = run_experiment(cfg, tmp_path / "out", progress=False)
    build_report(out)
    runs = load_runs(out)
    assert {r["method"] for r in runs} == set(METHODS)
    for r in runs:
        assert r["version"] > 0, r["method"]
        assert r["final"]["loss"] < r["initial"]["loss"], r["method"]
    report = (out / "report.md").read_text()
    for text in LABELS.values():
        assert text in report, text


def test_clipasync_list_shows_the_new_methods() -> None:
    res = CliRunner().invoke(app, ["list"])
    assert res.exit_code == 0, res.output
    for name in NEW:
        assert name in res.output, name
