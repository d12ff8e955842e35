"""Compute-time models: how long worker i takes for one job.

Every model implements ``sample(worker, now, rng) -> float > 0``. Stationary models
(whose law does not depend on ``now``) also implement ``sample_block(worker, rng,
size)``, which the simulator uses to draw times in vectorised blocks; both the full
simulator and the timing-only fast path consume the *same* blocks, so they see the
same times for the same seed.

The paper's straggler setting (Erickson & Johansson 2026, §6) is
``two_speed(num_fast=8, num_slow=8, slow_time=D)``: 8 workers take time 1, 8 take D.
Mishchenko et al. (2022) and Tyurin & Richtárik (2023) use τ_i = √i
(``sqrt_times``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError, SimulationExhausted

FloatArray = npt.NDArray[np.float64]


class ComputeTimeModel(Protocol):
    """A law for job compute times (time units of the simulator)."""

    @property
    def num_workers(self) -> int:
        """Number of workers the model describes."""
        ...

    @property
    def stationary(self) -> bool:
        """Whether the law is the same at every time (allows block sampling)."""
        ...

    def sample(self, worker: int, now: float, rng: np.random.Generator) -> float:
        """Return the compute time of the next job of ``worker`` started at ``now``."""
        ...

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        """Return ``size`` i.i.d. compute times of ``worker`` (stationary models)."""
        ...

    def mean_times(self) -> FloatArray:
        """Return each worker's mean compute time (inf where it does not exist)."""
        ...


def _per_worker(
    name: str, value: float | Sequence[float], num_workers: int
) -> FloatArray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (num_workers,)).copy()
    if arr.shape != (num_workers,):
        raise ConfigError(f"{name} must be a number or a list of {num_workers} numbers")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        raise ConfigError(
            f"{name} must be positive and finite, got {arr[bad][0]} for worker "
            f"{int(np.flatnonzero(bad)[0])}"
        )
    return arr


def _check_num_workers(num_workers: int) -> int:
    if not (isinstance(num_workers, int | np.integer) and num_workers >= 1):
        raise ConfigError(f"num_workers must be an integer >= 1, got {num_workers}")
    return int(num_workers)


def _resolve_workers(num_workers: int | None, value: float | Sequence[float]) -> int:
    if num_workers is None:
        if np.ndim(value) == 0:
            raise ConfigError(
                "num_workers is required when times are given as a number"
            )
        return len(value)  # type: ignore[arg-type]
    return _check_num_workers(num_workers)


@dataclass(frozen=True)
class FixedTimes:
    """Deterministic per-worker times τ_i (the fixed computation model).

    Args:
        times: τ_i > 0 for each worker.
    """

    times: tuple[float, ...]
    stationary: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if len(self.times) == 0:
            raise ConfigError("times must list at least one worker")
        _per_worker("times", self.times, len(self.times))

    @property
    def num_workers(self) -> int:
        return len(self.times)

    def sample(self, worker: int, now: float, rng: np.random.Generator) -> float:
        del now, rng
        return self.times[worker]

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        del rng
        return np.full(size, self.times[worker])

    def mean_times(self) -> FloatArray:
        return np.asarray(self.times, dtype=np.float64)


def two_speed(
    num_fast: int = 8, num_slow: int = 8, slow_time: float = 4.0, fast_time: float = 1.0
) -> FixedTimes:
    """Return the paper's pool: ``num_fast`` workers at ``fast_time``, then
    ``num_slow`` at ``slow_time`` (D). Workers 0..num_fast−1 are the fast ones."""
    if num_fast < 0 or num_slow < 0 or num_fast + num_slow == 0:
        raise ConfigError(
            f"need num_fast, num_slow >= 0 and at least one worker, "
            f"got {num_fast}, {num_slow}"
        )
    return FixedTimes((float(fast_time),) * num_fast + (float(slow_time),) * num_slow)


def sqrt_times(num_workers: int) -> FixedTimes:
    """Return τ_i = √i, i = 1..n (Tyurin & Richtárik 2023; Mishchenko et al. 2022)."""
    n = _check_num_workers(num_workers)
    return FixedTimes(tuple(math.sqrt(i) for i in range(1, n + 1)))


@dataclass(frozen=True)
class _RandomTimes:
    """Shared plumbing of the stationary random models (per-worker means)."""

    means: tuple[float, ...]
    stationary: bool = field(default=True, init=False)

    @property
    def num_workers(self) -> int:
        return len(self.means)

    def sample(self, worker: int, now: float, rng: np.random.Generator) -> float:
        del now
        return float(self.sample_block(worker, rng, 1)[0])

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        raise NotImplementedError

    def mean_times(self) -> FloatArray:
        return np.asarray(self.means, dtype=np.float64)


@dataclass(frozen=True)
class ExponentialTimes(_RandomTimes):
    """τ ~ Exp with the worker's mean (memoryless service; light tail)."""

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        return rng.exponential(self.means[worker], size)


@dataclass(frozen=True)
class LogNormalTimes(_RandomTimes):
    """τ = m · exp(s Z − s²/2), Z ~ N(0, 1): log-normal with mean m and log-std s."""

    sigma: float = 0.5

    def __post_init__(self) -> None:
        if not (self.sigma >= 0 and math.isfinite(self.sigma)):
            raise ConfigError(f"sigma must be >= 0, got {self.sigma}")

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        s = self.sigma
        return self.means[worker] * np.exp(s * rng.standard_normal(size) - 0.5 * s * s)


@dataclass(frozen=True)
class ParetoTimes(_RandomTimes):
    """Heavy-tailed τ: Pareto with index α > 1 and the worker's mean m.

    P(τ > t) = (t_min / t)^α for t ≥ t_min = m (α − 1) / α. For α ≤ 2 the variance is
    infinite: rare, very long stragglers.
    """

    alpha: float = 2.5

    def __post_init__(self) -> None:
        if not (self.alpha > 1 and math.isfinite(self.alpha)):
            raise ConfigError(f"alpha must be > 1 (finite mean), got {self.alpha}")

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        t_min = self.means[worker] * (self.alpha - 1) / self.alpha
        # numpy's pareto is Lomax (shifted): (1 + Lomax) * t_min is classic Pareto.
        return t_min * (1.0 + rng.pareto(self.alpha, size))


@dataclass(frozen=True)
class SlowWithProbability(_RandomTimes):
    """τ = m with probability 1 − p, m · slowdown with probability p (independent)."""

    p: float = 0.1
    slowdown: float = 10.0

    def __post_init__(self) -> None:
        if not (0 <= self.p <= 1):
            raise ConfigError(f"p must be in [0, 1], got {self.p}")
        if not (self.slowdown >= 1 and math.isfinite(self.slowdown)):
            raise ConfigError(f"slowdown must be >= 1, got {self.slowdown}")

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        slow = rng.random(size) < self.p
        return np.where(slow, self.means[worker] * self.slowdown, self.means[worker])

    def mean_times(self) -> FloatArray:
        m = np.asarray(self.means, dtype=np.float64)
        return m * (1 - self.p + self.p * self.slowdown)


def random_times(
    kind: str,
    mean: float | Sequence[float] = 1.0,
    num_workers: int | None = None,
    **params: float,
) -> _RandomTimes:
    """Build a stationary random model by name.

    Args:
        kind: ``"exponential"``, ``"lognormal"``, ``"pareto"`` or ``"slow_prob"``.
        mean: Mean time per worker (a number for all, or one per worker).
        num_workers: Required when ``mean`` is a number.
        **params: ``sigma`` (lognormal), ``alpha`` (pareto), ``p`` and ``slowdown``
            (slow_prob).
    """
    classes: dict[str, type[_RandomTimes]] = {
        "exponential": ExponentialTimes,
        "lognormal": LogNormalTimes,
        "pareto": ParetoTimes,
        "slow_prob": SlowWithProbability,
    }
    if kind not in classes:
        raise ConfigError(
            f"unknown timing kind {kind!r}; choose one of: {', '.join(classes)}"
        )
    n = _resolve_workers(num_workers, mean)
    means = tuple(float(m) for m in _per_worker("mean", mean, n))
    try:
        return classes[kind](means, **params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for timing kind {kind!r}: {exc}") from None


@dataclass(frozen=True)
class TraceTimes:
    """Replay recorded compute times: job j of worker i takes ``times[i][j]``.

    This is the test double of the simulator and the way a measured Ray run is
    replayed (``clipasync trace``). When a worker's trace is exhausted the run stops
    with :class:`SimulationExhausted` unless ``cycle=True``.

    Note:
        The model is stateless; the simulator passes the job index through ``now``'s
        companion counter, so ``sample`` is driven by :meth:`job_time`.
    """

    times: tuple[tuple[float, ...], ...]
    cycle: bool = False
    stationary: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not self.times:
            raise ConfigError("a trace needs at least one worker")
        for i, row in enumerate(self.times):
            if not row:
                raise ConfigError(f"trace for worker {i} is empty")
            _per_worker(f"trace times of worker {i}", row, len(row))

    @property
    def num_workers(self) -> int:
        return len(self.times)

    def job_time(self, worker: int, job_index: int) -> float:
        row = self.times[worker]
        if job_index >= len(row):
            if not self.cycle:
                raise SimulationExhausted(
                    f"trace for worker {worker} exhausted after {len(row)} jobs"
                )
            job_index %= len(row)
        return row[job_index]

    def sample(self, worker: int, now: float, rng: np.random.Generator) -> float:
        raise TypeError("TraceTimes is sampled by job index: use job_time()")

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        raise TypeError("TraceTimes is not stationary")

    def mean_times(self) -> FloatArray:
        return np.asarray([float(np.mean(r)) for r in self.times])

    @classmethod
    def from_csv(cls, path: str | Path, cycle: bool = False) -> TraceTimes:
        """Load a trace from a CSV with columns ``worker,compute_time`` (one row per
        job, in job order per worker; other columns are ignored)."""
        rows: dict[int, list[float]] = {}
        try:
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                fields = reader.fieldnames or []
                if "worker" not in fields or "compute_time" not in fields:
                    raise ConfigError(
                        f"trace {path} needs columns worker,compute_time, got {fields}"
                    )
                for line, row in enumerate(reader, start=2):
                    try:
                        w, t = int(row["worker"]), float(row["compute_time"])
                    except (TypeError, ValueError):
                        raise ConfigError(
                            f"trace {path} line {line}: bad row {str(row)[:80]}"
                        ) from None
                    if not 0 <= w < MAX_TRACE_WORKERS:
                        raise ConfigError(
                            f"trace {path} line {line}: worker {w} is not in "
                            f"0..{MAX_TRACE_WORKERS - 1}"
                        )
                    if not (math.isfinite(t) and t > 0):
                        raise ConfigError(
                            f"trace {path} line {line}: compute_time must be "
                            f"finite and positive (got {t})"
                        )
                    rows.setdefault(w, []).append(t)
        except FileNotFoundError:
            raise ConfigError(f"trace file not found: {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"trace {path} is a directory, not a CSV file") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(
                f"trace {path} is not a readable CSV ({exc!s:.60})"
            ) from None
        if not rows:
            raise ConfigError(f"trace {path} has no rows")
        n = max(rows) + 1
        missing = [i for i in range(n) if i not in rows]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (
                ", ..." if len(missing) > 5 else ""
            )
            raise ConfigError(
                f"trace {path} has no jobs for {len(missing)} workers ({shown})"
            )
        return cls(tuple(tuple(rows[i]) for i in range(n)), cycle=cycle)


#: Largest number of workers a trace may name (worker ids 0..MAX - 1): a 4-line
#: file naming worker 30,000,000 would otherwise allocate 30 million rows.
MAX_TRACE_WORKERS = 100_000


@dataclass(frozen=True)
class OnOffTimes:
    """A base model whose workers are periodically unavailable (time-varying).

    Worker i is *off* during [k·period + phase_i, k·period + phase_i + off_time) for
    every k; a job that would start while the worker is off starts when it comes back
    on. The returned time includes that wait, so it is the time from the start
    request to the result.
    """

    base: FixedTimes | _RandomTimes
    period: float
    off_time: float
    phases: tuple[float, ...]
    stationary: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not (self.period > 0 and 0 <= self.off_time < self.period):
            raise ConfigError(
                f"need period > 0 and 0 <= off_time < period, "
                f"got {self.period}, {self.off_time}"
            )
        if len(self.phases) != self.base.num_workers:
            raise ConfigError("phases must list one offset per worker")

    @property
    def num_workers(self) -> int:
        return self.base.num_workers

    def sample(self, worker: int, now: float, rng: np.random.Generator) -> float:
        pos = (now - self.phases[worker]) % self.period
        wait = self.off_time - pos if pos < self.off_time else 0.0
        return wait + self.base.sample(worker, now + wait, rng)

    def sample_block(
        self, worker: int, rng: np.random.Generator, size: int
    ) -> FloatArray:
        raise TypeError("OnOffTimes is not stationary")

    def mean_times(self) -> FloatArray:
        return self.base.mean_times() * self.period / (self.period - self.off_time)
