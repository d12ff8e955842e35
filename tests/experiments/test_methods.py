"""The experiment layer reads the method registry: a toy method runs from YAML to the
report with no edit anywhere else, and grid records keep their keys, order and types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.experiments import expand, load_config, run_experiment, validate_config
from clipasync.experiments.rundir import arrivals_path, load_runs
from clipasync.io import read_columns
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.base import ServerPolicy
from clipasync.policies.hyper import axis, fmt_value, positive
from clipasync.policies.registry import (
    MethodEntry,
    lookup,
    names,
    register,
    unregister,
)
from clipasync.reports.report import build_report
from clipasync.transforms import chain, scale
from tests.conftest import ROOT, tiny_experiment

EXPERIMENTS = ROOT / "experiments"


@dataclass(frozen=True, kw_only=True)
class HalfParams:
    """SGD that applies half of each gradient: x ← x − γ·g/2."""

    stepsize: float = field(metadata=axis("g"))

    def __post_init__(self) -> None:
        positive("stepsize", self.stepsize)


def build_half(p: HalfParams) -> ServerPolicy[Any]:
    policy: Any = AsyncSGD(chain(scale(0.5), scale(p.stepsize)), name="half")
    return policy  # type: ignore[no-any-return]


def label_half(p: HalfParams) -> str:
    return f"γ={fmt_value(p.stepsize)}, half the gradient"


def _raw() -> dict[str, Any]:
    return tiny_experiment(
        {
            "half": {"policy": "half", "stepsize": [0.5]},
            "quarter": {"policy": "async_sgd", "stepsize": 0.25},
        }
    )


def test_a_toy_method_runs_from_yaml_to_report(tmp_path: Path) -> None:
    register(
        MethodEntry(
            "half", "SGD on half the gradient", HalfParams, build_half, label_half
        )
    )
    try:
        assert names()[-1] == "half" and lookup("half").tags == (("stepsize", "g"),)
        cfg = validate_config(_raw())
        specs = expand(cfg)
        half = next(s for s in specs if s.method == "half")
        assert half.params == HalfParams(stepsize=0.5)
        assert half.hyper == {"stepsize": 0.5}
        assert half.run_id.startswith("half-g0.5-s0-")
        assert cfg.resolved()["methods"]["half"] == {
            "policy": "half",
            "stepsize": [0.5],
            "grid_size": 1,
        }

        out = run_experiment(cfg, tmp_path / "toy", progress=False)
        build_report(out)
        runs = {r["method"]: r for r in load_runs(out)}
        assert runs["half"]["policy"] == "half"
        # γ·(g/2) at γ = 0.5 is g/4 exactly (powers of two): the same run as plain
        # asynchronous SGD at γ = 0.25, but for the recorded stepsize.
        assert runs["half"]["final"] == runs["quarter"]["final"]
        assert runs["half"]["version"] == runs["quarter"]["version"] > 0
        cols = {
            m: read_columns(arrivals_path(out / "runs" / runs[m]["run_id"]))  # type: ignore[arg-type]
            for m in runs
        }
        np.testing.assert_array_equal(cols["half"]["delay"], cols["quarter"]["delay"])
        assert set(cols["half"]["stepsize"]) == {0.5}
        report = (out / "report.md").read_text()
        assert "γ=0.5, half the gradient" in report

        with pytest.raises(ConfigError) as info:
            validate_config(dict(_raw(), methods={"h": {"policy": "half", "lr": -1}}))
        assert str(info.value) == "config error at methods.h.lr: must be > 0 (got -1)"
        with pytest.raises(ConfigError, match="max_norm: not a field of policy 'half'"):
            validate_config(
                dict(
                    _raw(),
                    methods={"h": {"policy": "half", "stepsize": 1, "max_norm": 1}},
                )
            )
    finally:
        unregister("half")
    assert "half" not in names()
    with pytest.raises(ConfigError) as info:
        validate_config(_raw())
    assert str(info.value).startswith(
        "config error at methods.half.policy: unknown policy 'half'; choose one of: "
        "async_sgd, ringmaster"
    )


#: The first grid point of shipped methods, as run records have always held it
#: (keys in this order, floats as floats): the run-id hashes depend on it.
FIRST_POINTS = [
    (
        "stragglers_two_speed.yaml",
        "ringmaster",
        '{"stepsize": 0.25, "max_norm": null, "max_delay": 16, '
        '"delay_adaptive": false, "cancel_stale": false}',
    ),
    (
        "stragglers_two_speed.yaml",
        "rennala",
        # cancel_stale joined the record when its default became the paper's rule
        # (issue 14): Rennala's run ids changed then, on purpose.
        '{"stepsize": 2.0, "max_norm": null, "batch_size": 8, "delay_adaptive": false, '
        '"cancel_stale": false}',
    ),
    (
        "stragglers_two_speed.yaml",
        "minibatch",
        '{"stepsize": 2.0, "max_norm": null, "delay_adaptive": false}',
    ),
    (
        "stragglers_two_speed.yaml",
        "delay_adaptive",
        '{"stepsize": 0.125, "max_norm": null, "delay_adaptive": true, '
        '"assign": "same"}',
    ),
    (
        "adaptive_clipping.yaml",
        "adaptive_q50",
        '{"stepsize": 0.25, "max_norm": null, "delay_adaptive": false, '
        '"adaptive_clip": {"rule": "window", "quantile": 0.5, '
        '"initial_max_norm": 0.1, "window": 100, "adapt_rate": 0.2}, '
        '"assign": "same"}',
    ),
    (
        "federated.yaml",
        "fedbuff_clip",
        '{"stepsize": 1.0, "max_norm": null, "buffer_size": 4, '
        '"local_stepsize": 0.4, "client_max_norm": 0.1, "delay_adaptive": false, '
        '"server_momentum": null, "max_staleness": null, "local_steps": 5, '
        '"staleness": {"kind": "constant"}, "assign": "same"}',
    ),
    (
        "federated.yaml",
        "fedasync",
        '{"mixing": 0.6, "local_stepsize": 0.4, "client_max_norm": null, '
        '"delay_adaptive": false, "local_steps": 5, '
        '"staleness": {"kind": "polynomial", "exponent": 0.5}, "assign": "same"}',
    ),
    (
        "federated.yaml",
        "clipped_alg2",
        '{"stepsize": 0.4, "max_norm": 0.5, "delay_adaptive": false, '
        '"assign": "random"}',
    ),
]


@pytest.mark.parametrize(("config", "method", "record"), FIRST_POINTS)
def test_grid_records_keep_their_keys_order_and_types(
    config: str, method: str, record: str
) -> None:
    m = load_config(EXPERIMENTS / config).methods[method]
    first = m.grid()[0]
    assert json.dumps(first) == record
    # The record reads back into the same typed point.
    assert m.entry.from_hyper(first) == m.points()[0]
