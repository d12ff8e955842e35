"""One seed, many independent streams.

Every random stream of a run derives from one ``numpy.random.SeedSequence``: a stream
is identified by a purpose (oracle noise, compute times, policy choices, ...) and,
for per-worker streams, the worker index. Streams are created lazily from the spawn
key, so 10,000 workers cost nothing until they draw, and adding a purpose never
changes the others.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from clipasync.types import Seed


class Stream(IntEnum):
    """Purposes of random streams (values are part of the spawn key: never reorder)."""

    ORACLE = 0
    TIMING = 1
    POLICY = 2
    PROBLEM = 3
    AVAILABILITY = 4


def root_sequence(seed: Seed) -> np.random.SeedSequence:
    """Return the root ``SeedSequence`` of a run."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def stream(
    seed: Seed, purpose: Stream, index: int | None = None
) -> np.random.Generator:
    """Return the generator for ``purpose`` (and worker ``index``) of a run's seed."""
    root = root_sequence(seed)
    key = (
        (*root.spawn_key, int(purpose))
        if index is None
        else (*root.spawn_key, int(purpose), int(index))
    )
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=key))
