"""Client partitions (clipasync.problems.partition): exact covers, k classes per
client, natural groups, and min_size errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems.partition import (
    dirichlet_label_partition,
    natural_partition,
    shard_partition,
)


def assert_exact_cover(parts: list[np.ndarray], n: int, min_size: int) -> None:
    allidx = np.concatenate(parts)
    assert allidx.shape[0] == n
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
    assert min(p.shape[0] for p in parts) >= min_size
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partitioners_cover_every_sample_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=1000)
    parts = dirichlet_label_partition(labels, 16, alpha=0.5, min_size=20, rng=rng)
    assert len(parts) == 16
    assert_exact_cover(parts, 1000, 20)
    parts = shard_partition(labels, 20, classes_per_client=2, rng=rng, min_size=40)
    assert len(parts) == 20
    assert_exact_cover(parts, 1000, 40)
    groups = rng.choice(np.array(["AA", "DL", "UA", "B6", "WN"]), size=1000)
    parts = natural_partition(groups, min_size=50)
    assert len(parts) == 5
    assert_exact_cover(parts, 1000, 50)
    for p in parts:  # one airline per client
        assert np.unique(groups[p]).shape[0] == 1
    parts = natural_partition(groups, num_clients=2, rng=rng)
    assert_exact_cover(parts, 1000, 1)
    owners = {g: i for i, p in enumerate(parts) for g in np.unique(groups[p])}
    assert len(owners) == 5  # no airline split between clients


def test_shard_partition_gives_k_classes() -> None:
    labels = np.repeat(np.arange(10), 30)  # shards never straddle classes
    parts = shard_partition(labels, 10, 2, rng=np.random.default_rng(0))
    assert_exact_cover(parts, 300, 30)
    assert all(np.unique(labels[p]).shape[0] <= 2 for p in parts)
    parts = shard_partition(labels, 10, 1, rng=np.random.default_rng(0))
    assert all(np.unique(labels[p]).shape[0] == 1 for p in parts)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: natural_partition([0, 0, 0, 1]), None),
        (lambda: natural_partition([0, 0, 0, 1], min_size=2), "fewer than min_size=2"),
        (lambda: natural_partition([0, 1], num_clients=3), "cannot give 3 clients"),
        (
            lambda: shard_partition(np.arange(10), 4, 3, np.random.default_rng(0)),
            "12 shards exceed",
        ),
        (
            lambda: shard_partition(
                np.arange(10), 2, 1, np.random.default_rng(0), min_size=6
            ),
            "cannot give 2 clients min_size=6",
        ),
        (
            lambda: shard_partition(np.arange(10), 2, 0, np.random.default_rng(0)),
            "classes_per_client",
        ),
        (
            lambda: dirichlet_label_partition(
                np.repeat([0, 1], 50),
                10,
                alpha=0.01,
                min_size=9,
                max_attempts=3,
                rng=np.random.default_rng(0),
            ),
            "min_size=9",
        ),
    ],
)
def test_partitioners_enforce_min_size(call: Any, match: str | None) -> None:
    if match is None:
        assert [p.tolist() for p in call()] == [[0, 1, 2], [3]]
        return
    with pytest.raises(ConfigError, match=match):
        call()
