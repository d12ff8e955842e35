"""Federated methods from YAML: config, partitions, pools, report."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.experiments import expand, load_config, run_experiment, validate_config
from clipasync.experiments.build import build_policy, build_pool
from clipasync.experiments.rundir import arrivals_path
from clipasync.io import open_text
from clipasync.policies import FedAsync, FedBuff
from clipasync.problems import make_problem
from clipasync.problems.partition import partition_from_spec
from clipasync.recorder import ARRIVAL_COLUMNS
from clipasync.reports.report import build_report
from clipasync.seeding import Stream, stream
from clipasync.sim import OpenSystemPool, SimulatedPool, UnreliablePool
from clipasync.timing import FixedTimes
from tests.conftest import ROOT

FEDERATED = ROOT / "experiments" / "federated.yaml"
DROPOUT = ROOT / "experiments" / "federated_dropout.yaml"


#: One grid point per method, a short budget: six runs of well under a second.
TINY = [
    "seeds=[0]",
    "stop.max_time=5",
    "eval_every=2.5",
    "workers=1",
    "methods.fedbuff.local_stepsize=0.4",
    "methods.fedbuff_clip.local_stepsize=0.4",
    "methods.fedbuff_clip.client_max_norm=0.1",
    "methods.fedasync.mixing=0.6",
    "methods.fedasync.local_stepsize=0.4",
    "methods.fedasync_clip.local_stepsize=0.4",
    "methods.fedasync_clip.client_max_norm=0.1",
    "methods.clipped_alg2.stepsize=0.4",
    "methods.clipped_alg2.max_norm=1",
    "methods.vanilla_alg2.stepsize=0.2",
]


def _raw() -> dict[str, Any]:
    return {
        "name": "fed",
        "problem": {
            "name": "logistic",
            "dataset": "digits",
            "partition": {"kind": "dirichlet", "alpha": 0.5, "num_workers": 4},
        },
        "timing": {"kind": "exponential", "mean": 1.0, "num_workers": 4},
        "methods": {
            "fb": {
                "policy": "fedbuff",
                "stepsize": 1.0,
                "buffer_size": 2,
                "local_stepsize": 0.1,
            },
            "fa": {"policy": "fedasync", "mixing": 0.5, "local_stepsize": 0.1},
        },
        "stop": {"max_time": 5},
    }


def test_configs_load_and_expand() -> None:
    cfg = load_config(FEDERATED)
    policies = {m.policy for m in cfg.methods.values()}
    assert policies == {"fedbuff", "fedasync", "async_sgd"}
    assert cfg.methods["clipped_alg2"].assign == "random"
    specs = expand(cfg)
    grid = sum(len(m.grid()) for m in cfg.methods.values())
    assert len(specs) == grid * len(cfg.seeds) == 84
    fedasync = next(s for s in specs if s.policy == "fedasync")
    assert "stepsize" not in fedasync.hyper and fedasync.availability is None
    assert isinstance(build_policy(fedasync.policy, fedasync.params), FedAsync)
    fedbuff = next(s for s in specs if s.method == "fedbuff_clip")
    assert fedbuff.run_id.startswith("fedbuff_clip-g1-K4-el0.4-cc0.1-s0-")
    assert isinstance(build_policy(fedbuff.policy, fedbuff.params), FedBuff)
    drop = load_config(DROPOUT)
    drop_specs = expand(drop)
    assert len(drop_specs) == 27
    assert {s.availability["dropout"]["p"] for s in drop_specs} == {0.0, 0.1, 0.3}


def test_partition_mapping_builds_client_shards() -> None:
    spec = {"kind": "dirichlet", "alpha": 0.5, "min_size": 10, "num_workers": 32}
    a = make_problem("logistic", dataset="digits", partition=spec)
    shards = a.partition
    assert shards is not None and len(shards) == 32
    assert min(len(s) for s in shards) >= 10
    every = np.sort(np.concatenate(shards))
    assert np.array_equal(every, np.arange(a.num_samples))  # each row exactly once
    # Drawn from the problem seed's PROBLEM stream: the same shards every time.
    rng = stream(0, Stream.PROBLEM)
    again = partition_from_spec(spec, a.y_train, rng)
    assert all(np.array_equal(x, y) for x, y in zip(shards, again, strict=True))
    shards2 = partition_from_spec(
        {"kind": "shards", "classes_per_client": 2, "num_workers": 20}, a.y_train, rng
    )
    assert len(shards2) == 20
    natural = make_problem(
        "logistic", dataset="digits", partition={"kind": "natural", "key": "label"}
    )
    labels = [np.unique(natural.y_train[s]) for s in natural.partition]
    assert [u.tolist() for u in labels] == [[k] for k in range(10)]


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("methods.fa.mixing", 1.5, "methods.fa.mixing: must be <= 1"),
        ("methods.fa.stepsize", 0.1, "methods.fa.stepsize: not a field of policy"),
        ("methods.fb.buffer_size", 0, "methods.fb.buffer_size: must be >= 1"),
        ("methods.fb.client_max_norm", -1, "methods.fb.client_max_norm: must be > 0"),
        ("methods.fb.local_stepsize", None, "methods.fb.local_stepsize:"),
        ("methods.fb.staleness", {"kind": "bogus"}, "unknown staleness kind"),
        ("methods.fb.server_momentum", 1.0, "server_momentum: must be < 1 (got 1)"),
        ("methods.fb.mixing", 0.5, "methods.fb.mixing: not a field of policy"),
        ("problem.partition.num_workers", 8, "problem.partition.num_workers: 8"),
        ("availability", {"dropout": {"kind": "bernoulli", "p": 2}}, "probability"),
        ("availability", {"open_system": {"rate": 0}}, "open_system.rate: must be >"),
        ("availability", {"retry": True}, "availability.retry: unknown field"),
    ],
)
def test_bad_federated_fields_give_one_line_errors(
    key: str, value: Any, where: str
) -> None:
    raw = _raw()
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    message = str(info.value)
    assert "\n" not in message and message.startswith("config error at ")
    assert where in message


def test_bad_partition_is_a_config_error_at_build_time() -> None:
    with pytest.raises(ConfigError, match="partition: unknown kind 'bogus'"):
        make_problem("logistic", dataset="digits", partition={"kind": "bogus"})


def test_build_pool_kinds() -> None:
    timing = FixedTimes((1.0, 2.0))

    def task(w: int, x: Any, rng: Any) -> Any:
        return x

    assert isinstance(build_pool(timing, task, 0, None), SimulatedPool)
    drop = {"dropout": {"kind": "bernoulli", "p": 0.5}}
    assert isinstance(build_pool(timing, task, 0, drop), UnreliablePool)
    open_sys = {"open_system": {"rate": 2.0}}
    assert isinstance(build_pool(timing, task, 0, open_sys), OpenSystemPool)


def _summaries(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/summary.json"))]


def test_tiny_federated_experiment_end_to_end(tmp_path: Path) -> None:
    cfg = load_config(FEDERATED, TINY)
    out = run_experiment(cfg, tmp_path / "fed", progress=False)
    build_report(out)
    assert (out / "report.md").is_file()
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == set(cfg.methods)
    assert "mean_delta_norm" in rows[0]
    summaries = _summaries(out)
    assert len(summaries) == 6
    for s in summaries:
        assert s["counts"]["arrivals"] > 0 and np.isfinite(s["final"]["loss"])
        assert s["final"]["loss"] < s["initial"]["loss"]
    clip = next(s for s in summaries if s["method"] == "fedbuff_clip")
    assert clip["mean_delta_norm"] <= 0.1 + 1e-12  # client clipping bounds Δ
    arr_path = arrivals_path(out / "runs" / clip["run_id"])
    assert arr_path is not None
    with open_text(arr_path) as fh:
        header = next(csv.reader(fh))
    assert header[: len(ARRIVAL_COLUMNS)] == list(ARRIVAL_COLUMNS)
    assert "delta_norm" in header and "staleness_weight" in header
    report = (out / "report.md").read_text()
    assert "client c=0.1" in report


def test_dropout_counts_appear_in_the_summary(tmp_path: Path) -> None:
    cfg = load_config(
        DROPOUT,
        [
            "seeds=[0]",
            "stop.max_time=8",
            "eval_every=4",
            "workers=1",
            "sweep={availability.dropout.p: [0.0, 0.3]}",
        ],
    )
    out = run_experiment(cfg, tmp_path / "drop", progress=False)
    build_report(out)
    summaries = _summaries(out)
    assert len(summaries) == 6
    by_p = {
        (s["method"], s["availability"]["dropout"]["p"]): s["lost_jobs"]
        for s in summaries
    }
    assert all(by_p[(m, 0.0)] == 0 for m in cfg.methods)
    assert all(by_p[(m, 0.3)] > 0 for m in cfg.methods)
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert all("lost_jobs" in r for r in rows)
    assert any(float(r["lost_jobs"]) > 0 for r in rows)


def test_open_system_reports_concurrency(tmp_path: Path) -> None:
    cfg = load_config(
        DROPOUT,
        [
            "seeds=[0]",
            "stop.max_time=8",
            "eval_every=4",
            "workers=1",
            "sweep={availability.dropout.p: [0.1]}",
            "availability.open_system.rate=8",
        ],
    )
    out = run_experiment(cfg, tmp_path / "open", progress=False)
    for s in _summaries(out):
        assert s["started_jobs"] > 0 and s["mean_concurrency"] > 0
        assert s["lost_jobs"] >= 0
