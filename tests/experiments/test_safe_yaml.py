"""The bounded YAML reader (experiments.safe_yaml): bombs, depth, repeated keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clipasync.errors import ConfigError
from clipasync.experiments.loading import load_config
from clipasync.experiments.safe_yaml import MAX_ALIAS_NODES, MAX_DEPTH, load_yaml


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly() -> None:
    text = _bomb(10)  # 9^10 ≈ 3.5e9 strings once expanded, < 1 kB written
    assert len(text) < 1000
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"more than {MAX_ALIAS_NODES} nodes"):
        load_yaml(text, "bomb.yaml")
    assert time.perf_counter() - t0 < 1.0


def test_a_few_aliases_still_work() -> None:
    data = load_yaml("base: &b {x: 1, y: [1, 2]}\nother: *b\nm: {<<: *b, x: 3}\n", "f")
    assert data["other"] == {"x": 1, "y": [1, 2]} and data["m"]["x"] == 3


def test_a_self_referencing_alias_and_deep_nesting_are_one_line() -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        load_yaml("a: &a [1, *a]\n", "f")
    with pytest.raises(ConfigError, match=f"nested deeper than {MAX_DEPTH}"):
        load_yaml("[" * 5000 + "]" * 5000, "f")
    assert load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "f") is not None


def test_repeated_keys_are_an_error_naming_the_line() -> None:
    with pytest.raises(ConfigError, match="line 3: duplicate key 'methods'"):
        load_yaml("name: x\nmethods: {a: 1}\nmethods: {b: 2}\n", "f.yaml")
    with pytest.raises(ConfigError, match="duplicate key 'p'"):
        load_yaml("m: {p: 1, q: 2, p: 3}", "f")


def test_a_config_file_that_is_not_utf8_or_not_a_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)
