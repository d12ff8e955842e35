"""Experiment-file validation: valid files load, every bad input is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clipasync.errors import ConfigError
from clipasync.experiments import load_config, validate_config
from tests.conftest import ROOT, tiny_experiment

BASE = {
    "name": "t",
    "seeds": [0, 1],
    "problem": {"name": "least_squares", "num_samples": 50, "dim": 4, "batch_size": 5},
    "timing": {"kind": "two_speed", "num_fast": 2, "num_slow": 2, "slow_time": 4},
    "methods": {
        "clipped": {"policy": "async_sgd", "stepsize": [0.5, 0.25], "max_norm": [1, 2]},
        "ring": {"policy": "ringmaster", "lr": 0.1, "max_delay": [2, 4]},
    },
    "stop": {"max_time": 10, "target": {"metric": "loss", "value": 0.1}},
    "eval_every": 1,
}


def _write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _with(path: str, value: object) -> dict[str, object]:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    node = data
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value
    return data


@pytest.mark.parametrize("name", ["quick.yaml", "stragglers_two_speed.yaml"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(ROOT / "experiments" / name)
    assert cfg.methods and cfg.seeds


def test_valid_file_grid_and_aliases(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE))
    assert len(cfg.methods["clipped"].grid()) == 4
    assert cfg.methods["ring"].stepsize == [0.1]  # lr alias, scalar → list
    assert cfg.reference_method == "clipped"  # first method with max_norm
    resolved = cfg.resolved()
    assert resolved["methods"]["ring"]["grid_size"] == 2
    assert "assign" not in resolved["methods"]["ring"]


def test_power_grid() -> None:
    cfg = validate_config(
        _with("methods.clipped.stepsize", {"base": 2, "min_exp": -3, "max_exp": -1})
    )
    assert cfg.methods["clipped"].stepsize == [0.125, 0.25, 0.5]


def test_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    cfg = load_config(
        path, ["timing.slow_time=16", "methods.clipped.max_norm=[3]", "seeds=[5]"]
    )
    assert cfg.timing.slow_time == 16
    assert cfg.methods["clipped"].max_norm == [3.0]
    assert cfg.seeds == [5]


def test_sweep_points() -> None:
    cfg = validate_config(_with("sweep", {"timing.slow_time": [1, 2, 4]}))
    points = cfg.sweep_points()
    assert [p["timing.slow_time"] for p in points] == [1, 2, 4]
    assert cfg.at(points[-1]).timing.slow_time == 4


@pytest.mark.parametrize(
    ("path", "value", "field", "detail"),
    [
        ("methods.clipped.policy", "asgd", "methods.clipped.policy", "async_sgd"),
        ("methods.clipped.momentum", 0.9, "methods.clipped.momentum", "allowed"),
        ("timing.slow_time", -1, "timing.slow_time", "must be > 0 (got -1)"),
        ("methods.clipped.max_norm", [], "methods.clipped.max_norm", "empty grid"),
        ("methods.clipped.stepsize", [0.0], "methods.clipped.stepsize", "> 0"),
        ("methods.clipped.max_norm", -1, "methods.clipped.max_norm", "must be > 0"),
        ("timing.kind", "gamma", "timing.kind", "two_speed"),
        ("timing.times", [1, 2], "timing.times", "two_speed"),
        ("methods.ring.batch_size", 4, "methods.ring.batch_size", "ringmaster"),
        ("seeds", [], "seeds", "empty grid"),
        ("reference", "nope", "reference", "clipped"),
        ("problem.name", "quadratic", "problem.name", "least_squares"),
        ("sweep", {"timing.slow_time": [1, -2]}, "sweep", "timing.slow_time"),
        ("sweep", {"timing.slow_time": []}, "sweep.timing.slow_time", "empty grid"),
        ("stop", {"target": {"metric": "loss", "value": 1}}, "stop", "max_time"),
        ("workers", 0, "workers", "auto"),
        ("methods.clipped.lr", [0.1], "methods.clipped", "not both"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(
    path: str, value: object, field: str, detail: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_with(path, value))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"config error at {field}:"), msg
    assert detail in msg, msg


def test_unknown_top_level_field_lists_allowed() -> None:
    data = dict(BASE, colour="red")
    with pytest.raises(ConfigError, match=r"at colour: unknown field; allowed: name"):
        validate_config(data)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(_write(tmp_path, BASE), ["novalue"])


@pytest.mark.parametrize(
    "name",
    [
        "stragglers.yaml",
        "tau_c.yaml",
        "tau_max_random.yaml",
        "controls.yaml",
        "nonconvex.yaml",
    ],
)
def test_benchmark_configs_follow_the_protocol(name: str) -> None:
    """Every benchmark config tunes and scores on disjoint seeds, with >= 20
    evaluation seeds, a confirmed (robust) target and equal coarse budgets."""
    cfg = load_config(ROOT / "experiments" / name)
    protocol = cfg.protocol
    assert protocol is not None
    assert len(protocol.eval_seeds) >= 20
    assert not set(protocol.eval_seeds) & set(protocol.tuning_seeds)
    assert protocol.equal_budget
    assert cfg.stop.target is not None and cfg.stop.target.confirm >= 3
    sizes = {m.grid_size() for m in cfg.methods.values()}
    assert len(sizes) == 1, sizes


def test_target_direction_is_stated_for_an_unknown_metric() -> None:
    raw = tiny_experiment({"a": {"policy": "async_sgd", "stepsize": 0.1}})
    raw["stop"] = {"max_time": 12, "target": {"metric": "gap", "value": 0.1}}
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert str(info.value) == (
        "config error at stop.target: target metric 'gap' has no known direction; "
        "state it with direction: minimise or direction: maximise"
    )
    assert "\n" not in str(info.value)
    raw["stop"]["target"]["direction"] = "minimise"
    cfg = validate_config(raw)
    assert cfg.resolved()["stop"]["target"]["direction"] == "minimise"
    # Unset, the key stays out of the resolved config (run ids unchanged).
    raw["stop"]["target"] = {"metric": "loss", "value": 0.1}
    assert "direction" not in validate_config(raw).resolved()["stop"]["target"]
