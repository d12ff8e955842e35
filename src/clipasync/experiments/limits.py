"""Limits that keep one experiment file from running effectively forever or taking
the machine down, each refused with a message naming the limit and how to raise it.

A valid-looking file can ask for a 3-million-point grid, 30 million workers, an
evaluation every 10^-7 time units or ``max_updates: 1e30`` with no target: each is
checked here before anything runs. The limits sit far above every experiment of
``experiments/`` (the largest: a few thousand runs, 64 workers, 10^5 updates per
run) and each can be raised with an environment variable:

========================  ==========================  ==========================
limit                     default                     variable
========================  ==========================  ==========================
runs per experiment       :data:`MAX_RUNS`            ``CLIPASYNC_MAX_RUNS``
points of a method grid   :data:`MAX_GRID_POINTS`     ``CLIPASYNC_MAX_GRID``
simulated workers         :data:`MAX_WORKERS`         ``CLIPASYNC_MAX_WORKERS``
worker processes          :data:`MAX_PROCESSES`       ``CLIPASYNC_MAX_PROCESSES``
arrivals per run          :data:`MAX_EVENTS`          ``CLIPASYNC_MAX_EVENTS``
evaluations per run       :data:`MAX_EVALS`           ``CLIPASYNC_MAX_EVALS``
========================  ==========================  ==========================

The arrivals of a run are bounded by ``max_arrivals``, by ``max_updates`` (counted
as one arrival each: a lower bound on the work, so the check never refuses too
much) and by ``max_time`` × the pool's largest arrival rate Σᵢ 1/τᵢ (Erickson &
Johansson 2026, arXiv 2606.13287, §2: worker i returns a gradient every τᵢ time
units when it is always busy); a run whose smallest bound is above
:data:`MAX_EVENTS` is refused.
"""

from __future__ import annotations

import math
import os
from typing import Any

from clipasync.errors import ConfigError

MAX_RUNS = 100_000
MAX_GRID_POINTS = 100_000
MAX_WORKERS = 100_000
MAX_PROCESSES = 256
MAX_EVENTS = 100_000_000
MAX_EVALS = 1_000_000

_ENV = {
    "runs": ("CLIPASYNC_MAX_RUNS", MAX_RUNS),
    "grid": ("CLIPASYNC_MAX_GRID", MAX_GRID_POINTS),
    "workers": ("CLIPASYNC_MAX_WORKERS", MAX_WORKERS),
    "processes": ("CLIPASYNC_MAX_PROCESSES", MAX_PROCESSES),
    "events": ("CLIPASYNC_MAX_EVENTS", MAX_EVENTS),
    "evals": ("CLIPASYNC_MAX_EVALS", MAX_EVALS),
}


def limit(name: str) -> int:
    """The current value of a limit (its environment variable, else the default)."""
    var, default = _ENV[name]
    text = os.environ.get(var, "")
    if not text:
        return default
    try:
        value = int(float(text))
    except (ValueError, OverflowError):
        raise ConfigError(f"{var}={text!r}: must be a positive integer") from None
    if value < 1:
        raise ConfigError(f"{var}={text!r}: must be a positive integer")
    return value


def check_at_most(what: str, value: float, name: str, unit: str = "") -> None:
    """Refuse ``value`` above the limit ``name``, naming it and its variable.

    Raises:
        ValueError: ``<what>: <value> <unit> is above the limit of N (set VAR to
            raise it)`` (a ValueError, so that pydantic reports it at its field).
    """
    cap = limit(name)
    if value > cap:
        var = _ENV[name][0]
        amount = f"{value:.4g} {unit}".strip()
        raise ValueError(
            f"{what}: {amount} is above the limit of {cap} (set {var} to raise it)"
        )


def update_rate(timing: dict[str, Any]) -> float | None:
    """Largest arrivals per time unit of a timing block, Σᵢ 1/τᵢ over its workers'
    mean compute times (``None`` when it is only known at run time: traces)."""
    kind = timing.get("kind")
    n = timing.get("num_workers")
    mean = timing.get("mean", 1.0)
    if kind == "two_speed":
        fast, slow = timing.get("num_fast", 8), timing.get("num_slow", 8)
        ft = timing.get("fast_time", 1.0)
        st = timing.get("slow_time", 4.0)
        return float(fast / ft + slow / st)
    if kind == "fixed":
        return float(sum(1.0 / t for t in timing.get("times") or ()))
    if kind == "sqrt" and isinstance(n, int):
        return float(sum(1.0 / math.sqrt(i) for i in range(1, min(n, 10**6) + 1)))
    if isinstance(mean, list):
        return float(sum(1.0 / m for m in mean))
    if isinstance(n, int) and isinstance(mean, int | float) and mean > 0:
        # A heavy-tailed or random model returns faster than its mean at times;
        # 10× the mean rate keeps the bound an upper bound for any usual spread.
        return float(10 * n / mean)
    return None


def check_run_budget(
    stop: dict[str, Any], timing: dict[str, Any], eval_every: float | None
) -> None:
    """Refuse a run whose arrivals or evaluations would be effectively endless.

    Raises:
        ValueError: Naming the budget (``stop.max_time`` etc.) and the limit.
    """
    bounds: list[tuple[str, float]] = []
    for key in ("max_arrivals", "max_updates"):
        if stop.get(key) is not None:
            bounds.append((f"stop.{key}", float(stop[key])))
    rate = update_rate(timing)
    if stop.get("max_time") is not None and rate is not None:
        bounds.append(("stop.max_time", float(stop["max_time"]) * rate))
    if bounds:
        what, events = min(bounds, key=lambda b: b[1])
        check_at_most(what, events, "events", "arrivals per run")
    if eval_every is not None and stop.get("max_time") is not None:
        evals = float(stop["max_time"]) / eval_every
        check_at_most("eval_every", evals, "evals", "evaluations per run")
