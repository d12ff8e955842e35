"""The one driver loop shared by the simulator and the Ray runtime.

``run(policy, pool, ...)`` asks the pool for the next finished job, hands it to the
policy, cancels and dispatches what the policy says, records telemetry and evaluates
the model on a cadence of (simulated or wall-clock) time. It holds no algorithm logic:
every method is a :class:`~clipasync.policies.base.ServerPolicy`.

Evaluation semantics: the model is piecewise constant between arrivals, so the
evaluation at time t uses the model after every arrival strictly before t. The time
to target (the *first hit*) is the first evaluation time at which the target holds, so
its resolution is ``eval_every``. A target with ``confirm = k`` also asks for a
*robust hit*: the first evaluation of the first streak of k consecutive evaluations
at the target; the run stops after that streak (``k = 1``: at the first hit). Each
evaluation row holds ``time``, ``version`` (applied updates) and ``arrivals``
(gradients received so far) beside the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from clipasync.errors import ConfigError, SimulationExhausted
from clipasync.policies.base import ServerPolicy
from clipasync.recorder import Recorder
from clipasync.types import Arrival, Vector

StopReason = Literal[
    "max_time", "max_updates", "max_arrivals", "target", "diverged", "exhausted"
]

#: Metrics for which smaller is better.
MINIMISED = frozenset(
    {
        "loss",
        "grad_norm",
        "grad_norm_sq",
        "avg_grad_norm_sq",
        "min_grad_norm_sq",
        "perplexity",
        "test_loss",
        "test_perplexity",
        "suboptimality",
    }
)

#: Metrics for which larger is better. A target on any other metric states its
#: direction (a custom ``gap`` is not silently maximised and "reached" at t = 0).
MAXIMISED = frozenset({"accuracy", "test_accuracy", "train_accuracy"})

Direction = Literal["minimise", "maximise"]


def metric_direction(metric: str, direction: str | None = None) -> Direction:
    """Return whether a target on ``metric`` is minimised or maximised: the stated
    ``direction``, else the known one of :data:`MINIMISED` / :data:`MAXIMISED`.

    Raises:
        ConfigError: One line, if the direction is neither stated nor known (or is
            not ``minimise`` / ``maximise``).
    """
    if direction is not None:
        if direction not in ("minimise", "maximise"):
            raise ConfigError(
                f"target direction must be 'minimise' or 'maximise', got {direction!r}"
            )
        return "minimise" if direction == "minimise" else "maximise"
    if metric in MINIMISED:
        return "minimise"
    if metric in MAXIMISED:
        return "maximise"
    raise ConfigError(
        f"target metric {metric!r} has no known direction; state it with "
        "direction: minimise or direction: maximise"
    )


class WorkerPool(Protocol):
    """Runs jobs and reports them as they finish (simulated or real)."""

    num_workers: int

    def submit(self, worker: int, x: Vector, version: int) -> int:
        """Queue a job on ``worker`` at model ``x`` (server version ``version``).

        A pool that can abandon jobs also takes ``time_limit=t`` (keyword): a job
        whose compute time exceeds t arrives at start + t with ``timed_out`` set
        (see :data:`TIME_LIMITS`)."""
        ...

    def cancel(self, job: int) -> None:
        """Drop a job; a late result must never be returned."""
        ...

    def next_arrival(self) -> Arrival:
        """Return the next finished job (advance the clock or block)."""
        ...

    def now(self) -> float:
        """Return the pool's current time."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


#: The attribute by which a pool says that its ``submit`` takes ``time_limit``.
TIME_LIMITS = "supports_time_limits"


@dataclass(frozen=True)
class Target:
    """Stop when ``metric`` reaches ``value`` (≤ for minimised metrics, ≥ for
    maximised ones).

    Args:
        metric: Name of an evaluation metric, e.g. ``"loss"`` or ``"test_accuracy"``.
        value: Threshold.
        confirm: Consecutive evaluations at the target that confirm it (>= 1); the
            run stops after the first such streak.
        direction: ``"minimise"`` or ``"maximise"``; required unless the metric is
            a known one (:func:`metric_direction`).

    Raises:
        ConfigError: On a bad ``confirm`` or a direction neither stated nor known.
    """

    metric: str
    value: float
    confirm: int = 1
    direction: Direction | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.confirm, bool)
            or not isinstance(self.confirm, int)
            or self.confirm < 1
        ):
            raise ConfigError(
                f"target confirm must be an integer >= 1, got {self.confirm!r}"
            )
        metric_direction(self.metric, self.direction)

    @property
    def minimise(self) -> bool:
        return metric_direction(self.metric, self.direction) == "minimise"

    def reached(self, metrics: dict[str, float]) -> bool:
        v = metrics.get(self.metric)
        if v is None:
            raise ConfigError(
                f"target metric {self.metric!r} is not evaluated; available: "
                f"{', '.join(sorted(metrics))}"
            )
        return v <= self.value if self.minimise else v >= self.value


@dataclass(frozen=True)
class StopRule:
    """When a run ends. At least one of the budgets must be set.

    Args:
        max_time: Time budget (simulated units or seconds).
        max_updates: Number of applied updates.
        max_arrivals: Number of arrivals (applied or not).
        target: Stop early once the target is reached.
        diverge_factor: Stop as diverged when the evaluated loss exceeds this multiple
            of the initial loss (or is not finite).
    """

    max_time: float | None = None
    max_updates: int | None = None
    max_arrivals: int | None = None
    target: Target | None = None
    diverge_factor: float = 1e6

    def __post_init__(self) -> None:
        if (
            self.max_time is None
            and self.max_updates is None
            and self.max_arrivals is None
        ):
            raise ConfigError(
                "stop needs at least one of max_time, max_updates, max_arrivals"
            )
        for name in ("max_time", "max_updates", "max_arrivals"):
            v = getattr(self, name)
            if v is not None and not (v > 0):
                raise ConfigError(f"stop.{name} must be positive, got {v}")


@dataclass
class RunResult:
    """Outcome of :func:`run`.

    Attributes:
        params: Final iterate.
        version: Number of applied updates.
        time: Time at which the run stopped.
        stop_reason: Why it stopped.
        time_to_target: First evaluation time the target held (the first hit), else
            ``None``.
        counts: ``arrivals``, ``applied``, ``discarded``, ``skipped``, ``cancelled``.
        recorder: The arrival and evaluation records.
        robust_hit: Time of the first evaluation of the first streak of
            ``target.confirm`` consecutive evaluations at the target, else ``None``
            (equal to ``time_to_target`` when ``confirm`` is 1).
    """

    params: Vector
    version: int
    time: float
    stop_reason: StopReason
    time_to_target: float | None
    counts: dict[str, int]
    recorder: Recorder = field(repr=False)
    robust_hit: float | None = None

    @property
    def first_hit(self) -> float | None:
        """The first evaluation time the target held (``time_to_target``)."""
        return self.time_to_target


Evaluate = Callable[[Vector], dict[str, float]]


def run(
    policy: ServerPolicy[Any],
    pool: WorkerPool,
    x0: Vector,
    *,
    stop: StopRule,
    rng: np.random.Generator,
    evaluate: Evaluate | None = None,
    eval_every: float | None = None,
    recorder: Recorder | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Drive ``policy`` over ``pool`` until ``stop`` says so.

    Args:
        policy: The server rule.
        pool: The workers (simulated or real).
        x0: Initial iterate.
        stop: Budgets and target.
        rng: The policy's random stream (random assignment).
        evaluate: Metrics of a model; required when ``stop.target`` is set.
        eval_every: Evaluation cadence in time units (``None``: only at the ends).
        recorder: Where rows go (a new one if ``None``).
        on_progress: Called with the current time after each evaluation (progress
            bars live in the caller, never here).

    Returns:
        The :class:`RunResult`.
    """
    if stop.target is not None and evaluate is None:
        raise ConfigError("a target needs an evaluate function")
    if eval_every is not None and not (eval_every > 0):
        raise ConfigError(f"eval_every must be positive, got {eval_every}")
    rec = recorder if recorder is not None else Recorder()
    state = policy.init(x0, pool.num_workers, rng)
    inflight: dict[int, list[int]] = {}
    counts = {"arrivals": 0, "applied": 0, "discarded": 0, "skipped": 0, "cancelled": 0}

    # A policy with a time_limit(worker) method (MindFlayer) has its jobs abandoned
    # past that limit by the pool; every other policy submits as it always has.
    limit_of: Callable[[int], float | None] | None = getattr(policy, "time_limit", None)

    def dispatch(workers: tuple[int, ...]) -> None:
        x, v = policy.params(state), policy.version(state)
        if limit_of is None:  # the hot path: no time limits
            for w in workers:
                inflight.setdefault(w, []).append(pool.submit(w, x, v))
            return
        for w in workers:
            limit = limit_of(w)
            if limit is None:
                job = pool.submit(w, x, v)
            elif getattr(pool, TIME_LIMITS, False):
                job = pool.submit(w, x, v, time_limit=limit)  # type: ignore[call-arg]
            else:
                raise ConfigError(
                    f"policy {policy.name!r} abandons jobs past a time limit, which "
                    f"{type(pool).__name__} cannot do (use the simulator or LocalPool)"
                )
            inflight.setdefault(w, []).append(job)

    initial_loss: float | None = None
    time_to_target: float | None = None
    robust_hit: float | None = None
    confirm = stop.target.confirm if stop.target is not None else 1
    streak, streak_start = 0, 0.0
    reason: StopReason | None = None

    def do_eval(t: float, arrivals: int) -> StopReason | None:
        nonlocal initial_loss, time_to_target, robust_hit, streak, streak_start
        assert evaluate is not None
        metrics = evaluate(policy.params(state))
        rec.record_eval(t, policy.version(state), metrics, arrivals)
        if on_progress is not None:
            on_progress(t)
        loss = metrics.get("loss", 0.0)
        if initial_loss is None:
            initial_loss = loss
        if not math.isfinite(loss) or (
            initial_loss > 0 and loss > stop.diverge_factor * initial_loss
        ):
            return "diverged"
        if stop.target is not None:
            if not stop.target.reached(metrics):
                streak = 0
                return None
            if time_to_target is None:
                time_to_target = t
            if streak == 0:
                streak_start = t
            streak += 1
            if streak >= confirm:
                robust_hit = streak_start
                return "target"
        return None

    dispatch(policy.start(state))
    next_eval = math.inf
    if evaluate is not None:
        reason = do_eval(0.0, 0)
        next_eval = eval_every if eval_every is not None else math.inf
    max_time = stop.max_time if stop.max_time is not None else math.inf
    max_updates = stop.max_updates if stop.max_updates is not None else math.inf
    max_arrivals = stop.max_arrivals if stop.max_arrivals is not None else math.inf
    now = 0.0
    # The hot loop: counters live in locals and methods are bound once (this loop
    # is the simulator's overhead on top of the gradients; see benchmarks/).
    next_arrival, on_arrival, version_of = (
        pool.next_arrival,
        policy.on_arrival,
        policy.version,
    )
    record = rec.record_arrival
    arrivals = applied = discarded = skipped = cancelled = 0
    while reason is None:
        try:
            arrival = next_arrival()
        except SimulationExhausted:
            reason = "exhausted"
            break
        t = arrival.time
        if next_eval <= t:
            while next_eval <= min(t, max_time) and reason is None:
                reason = do_eval(next_eval, arrivals)
                now = next_eval
                next_eval += eval_every  # type: ignore[operator]
            if reason is not None:
                break
        if t > max_time:
            reason = "max_time"
            now = max_time
            break
        now = t
        jobs = inflight.get(arrival.worker)
        if jobs:
            jobs.remove(arrival.job)
        version = version_of(state)
        state, reply = on_arrival(state, arrival)
        arrivals += 1
        applied += reply.applied
        discarded += reply.discarded
        skipped += reply.skipped
        for w in reply.cancel:
            for job in inflight.pop(w, []):
                pool.cancel(job)
                rec.record_cancel(t, job, w)
                cancelled += 1
        if reply.dispatch:
            dispatch(reply.dispatch)
        record(arrival, version, reply)
        if applied >= max_updates:
            reason = "max_updates"
        elif arrivals >= max_arrivals:
            reason = "max_arrivals"
    counts.update(
        arrivals=arrivals,
        applied=applied,
        discarded=discarded,
        skipped=skipped,
        cancelled=cancelled,
    )
    if evaluate is not None and reason in (
        "max_time",
        "max_updates",
        "max_arrivals",
        "exhausted",
    ):
        last = rec.evals[-1]["time"] if rec.evals else -1.0
        final = do_eval(now, arrivals) if now > last else None
        if final in ("target", "diverged"):  # a run that ends diverged says so
            reason = final
    assert reason is not None
    return RunResult(
        params=policy.params(state),
        version=policy.version(state),
        time=now,
        stop_reason=reason,
        time_to_target=time_to_target,
        counts=counts,
        recorder=rec,
        robust_hit=robust_hit,
    )
