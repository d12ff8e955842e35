"""Dropout models: which job attempts of a client are lost.

A client of a federated run may vanish while it trains; the pools of
:mod:`clipasync.sim.availability` ask a :class:`DropoutModel` whether each attempt
(a job, or a retry of one) over its interval [start, end) is lost:

* :class:`BernoulliDropout`: each attempt is lost with probability p;
* :class:`PeriodicOffline`: lost if the client's periodic offline window meets the
  attempt (the windows of :class:`clipasync.timing.OnOffTimes`, which instead waits
  for the client);
* :class:`ScriptedDropout`: the listed attempts (the test double).

:func:`make_dropout` builds one from a config mapping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from numpy.random import Generator

from clipasync.errors import ConfigError


class DropoutModel(Protocol):
    """Decides whether a client vanished during one job attempt."""

    def lost(
        self, worker: int, attempt: int, start: float, end: float, rng: Generator
    ) -> bool:
        """Return True if ``worker``'s attempt number ``attempt`` (0-based, retries
        included) over [start, end) is lost; ``rng`` is the worker's own stream."""
        ...

    def to_config(self) -> dict[str, Any]:
        """Return the parameters as plain data."""
        ...


@dataclass(frozen=True, slots=True)
class BernoulliDropout:
    """Each attempt is lost with probability p, independently.

    Args:
        p: Loss probability in [0, 1).
    """

    p: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.p) and 0.0 <= self.p < 1.0):
            raise ConfigError(f"dropout probability p must be in [0, 1), got {self.p}")

    def lost(
        self, worker: int, attempt: int, start: float, end: float, rng: Generator
    ) -> bool:
        del worker, attempt, start, end
        return bool(rng.random() < self.p)

    def to_config(self) -> dict[str, Any]:
        return {"kind": "bernoulli", "p": self.p}


@dataclass(frozen=True, slots=True)
class PeriodicOffline:
    """Client i is offline during [k·period + phase_i, k·period + phase_i + off_time).

    An attempt is lost when its interval [start, end) meets an offline window (the
    client vanished mid-job, or was already gone). The same windows as
    :class:`clipasync.timing.OnOffTimes`, which instead *waits* for the client.

    Args:
        period: Length of one on/off cycle (> 0).
        off_time: Offline part of each cycle, 0 < off_time < period.
        phases: Offset of each client's first offline window (one per worker).
    """

    period: float
    off_time: float
    phases: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.period) and self.period > 0):
            raise ConfigError(f"period must be positive and finite, got {self.period}")
        if not (0.0 < self.off_time < self.period):
            raise ConfigError(
                f"need 0 < off_time < period, got off_time={self.off_time}, "
                f"period={self.period}"
            )
        if not self.phases:
            raise ConfigError("phases must list one offset per worker")

    def lost(
        self, worker: int, attempt: int, start: float, end: float, rng: Generator
    ) -> bool:
        del attempt, rng
        pos = (start - self.phases[worker]) % self.period
        if pos < self.off_time:
            return True
        return end > start + (self.period - pos)  # reaches the next window

    def to_config(self) -> dict[str, Any]:
        return {
            "kind": "periodic",
            "period": self.period,
            "off_time": self.off_time,
            "phases": list(self.phases),
        }


@dataclass(frozen=True, slots=True)
class ScriptedDropout:
    """Lose exactly the listed attempts (the test double).

    Args:
        attempts: ``(worker, attempt)`` pairs to lose; attempts count every job
            started on that worker, retries included, from 0.
    """

    attempts: frozenset[tuple[int, int]]

    def lost(
        self, worker: int, attempt: int, start: float, end: float, rng: Generator
    ) -> bool:
        del start, end, rng
        return (worker, attempt) in self.attempts

    def to_config(self) -> dict[str, Any]:
        return {"kind": "scripted", "attempts": sorted(map(list, self.attempts))}


def make_dropout(spec: Mapping[str, Any]) -> DropoutModel:
    """Build a dropout model from a config mapping.

    ``{"kind": "bernoulli", "p": 0.1}`` or
    ``{"kind": "periodic", "period": 10, "off_time": 2, "phases": [0, 5, ...]}``.

    Raises:
        ConfigError: Unknown kind or bad parameters.
    """
    params = dict(spec)
    kind = params.pop("kind", None)
    try:
        if kind == "bernoulli":
            return BernoulliDropout(**params)
        if kind == "periodic":
            phases = tuple(float(p) for p in params.pop("phases"))
            return PeriodicOffline(phases=phases, **params)
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"bad parameters for dropout kind {kind!r}: {exc}") from None
    raise ConfigError(
        f"unknown dropout kind {kind!r}; choose one of: bernoulli, periodic"
    )


def check_phases(dropout: DropoutModel | None, num_workers: int) -> None:
    """Raise :class:`ConfigError` if ``dropout`` lists phases for another number of
    workers than ``num_workers``."""
    phases = getattr(dropout, "phases", None)
    if phases is not None and len(phases) != num_workers:
        raise ConfigError(
            f"dropout phases list {len(phases)} workers, the pool has {num_workers}"
        )
