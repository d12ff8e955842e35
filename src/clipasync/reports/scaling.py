"""Theory beside the measurement: updates to target against τ_max and τ_C.

For a sweep over the straggler setting (``timing.slow_time`` = D in a pool of fast
workers and one slow one, or the number of workers), the report plots each
method's median updates to target over evaluation seeds against the largest
observed delay τ_max (per sweep point, the largest ``largest_delay`` of its runs)
and against the concurrency τ_C (the pool's number of workers), with the scaling
the theory predicts drawn through the first measured point:

* clipped asynchronous SGD (a ``max_norm``): Õ(σ²/ε⁴ + στ_C/ε³ + τ_C/ε²) updates
  (Erickson & Johansson 2026, arXiv 2606.13287, Thm 4.2) — flat in τ_max,
  growing with τ_C (:func:`clipasync.theory.advice.clipped_asgd_parameters`'s
  rate terms);
* vanilla ASGD at a constant stepsize: O(σ²/ε⁴ + τ_max/ε²)
  (:func:`clipasync.theory.advice.vanilla_asgd_updates`) — growing with τ_max;
* delay-adaptive ASGD: O(σ²/ε⁴ + τ_C/ε²)
  (:func:`clipasync.theory.advice.delay_adaptive_asgd_updates`).

Constants are omitted and each curve is normalised at the first measured point,
so only its shape is the theory's. The curves keep the delay terms only (σ = 0):
the steepest growth the bounds allow; a noise term adds a constant that flattens
every curve. Other methods (Ringmaster, FedBuff, …) are plotted without a curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.experiments.analysis import Analysis, concurrency, largest_delay
from clipasync.reports.scores import CellStats, Key
from clipasync.theory.advice import (
    clipped_asgd_parameters,
    delay_adaptive_asgd_updates,
    vanilla_asgd_updates,
)

Array = npt.NDArray[np.float64]

#: Accuracy of the normalised bounds (cancels in the ratio when σ = 0).
_EPS = 0.5

CAPTION = (
    "Median updates to target over seeds (evaluation seeds under the tuning "
    "protocol; bars: the order-statistic "
    "interval; open markers with an arrow: lower bounds, seeds that never reached "
    "the target) against the largest observed delay τ_max and the concurrency τ_C. "
    "Dashed: the theory's predicted scaling — clipped ASGD Õ(σ²/ε⁴ + στ_C/ε³ + "
    "τ_C/ε²) (Erickson & Johansson 2026, Thm 4.2), vanilla ASGD O(σ²/ε⁴ + "
    "τ_max/ε²), delay-adaptive ASGD O(σ²/ε⁴ + τ_C/ε²); absolute constants omitted, "
    "delay terms only (σ = 0, the steepest the bounds allow), each curve normalised "
    "at the first measured point, so only its shape is predicted."
)


def theory_kind(policy: str, hyper: dict[str, Any]) -> str | None:
    """``clipped``, ``vanilla`` or ``delay_adaptive`` for an ASGD grid point, else
    ``None`` (no bound to draw)."""
    if policy != "async_sgd":
        return None
    if hyper.get("delay_adaptive"):
        return "delay_adaptive" if hyper.get("max_norm") is None else None
    return "clipped" if hyper.get("max_norm") is not None else "vanilla"


def theory_updates(kind: str, tau_max: float, tau_c: int | None) -> float:
    """The bound of ``kind`` at (τ_max, τ_C), constants omitted, σ = 0 (NaN when it
    needs a τ_C that is unknown)."""
    if kind == "vanilla":
        return vanilla_asgd_updates(
            L=1.0, delta=1.0, sigma=0.0, eps=_EPS, max_delay=max(0.0, tau_max)
        )
    if tau_c is None or tau_c < 1:
        return math.nan
    if kind == "delay_adaptive":
        return delay_adaptive_asgd_updates(
            L=1.0, delta=1.0, sigma=0.0, eps=_EPS, concurrency=tau_c
        )
    advice = clipped_asgd_parameters(
        L=1.0, delta=1.0, sigma=0.0, theta=1.0, eps=_EPS, concurrency=tau_c
    )
    return float(sum(advice.rate_terms))


@dataclass
class Scaling:
    """What the scaling figure shows, per sweep point.

    Attributes:
        tau_max: Largest observed delay over the point's runs.
        tau_c: Number of workers (NaN when unknown).
        measured: Method → (median, lower end, upper end, censored) arrays.
        theory: Method → the normalised bound (NaN where none).
    """

    tau_max: Array
    tau_c: Array
    measured: dict[str, tuple[Array, Array, Array, npt.NDArray[np.bool_]]] = field(
        default_factory=dict
    )
    theory: dict[str, Array] = field(default_factory=dict)

    def panels(self) -> list[tuple[str, Array]]:
        """The x axes that vary over the sweep (τ_max, τ_C)."""
        out = []
        for name, xs in (
            ("largest observed delay τ_max", self.tau_max),
            ("concurrency τ_C (workers)", self.tau_c),
        ):
            ok = xs[np.isfinite(xs)]
            if ok.size == xs.size and np.unique(ok).size >= 2:
                out.append((name, xs))
        return out


def scaling_data(a: Analysis, stats: dict[Key, CellStats]) -> Scaling | None:
    """Return the figure's data, or ``None`` without a target, with fewer than two
    sweep points, or when neither τ_max nor τ_C varies."""
    if not a.has_target or len(a.points) < 2:
        return None
    tau_max, tau_c = [], []
    for p in a.points:
        runs = [r for m in a.methods if (p, m) in a.best for r in a.best[(p, m)].runs]
        t = largest_delay(runs)
        tau_max.append(float(t) if t is not None else math.nan)
        workers = {concurrency(r) for r in runs}
        only = workers.pop() if len(workers) == 1 else None
        tau_c.append(float(only) if only is not None else math.nan)
    out = Scaling(np.array(tau_max), np.array(tau_c))
    if not out.panels():
        return None
    for m in a.methods:
        y, lo, hi, cens = (np.full(len(a.points), math.nan) for _ in range(4))
        kinds = set()
        for i, p in enumerate(a.points):
            st = stats.get((p, m))
            iv = st.intervals.get("updates") if st is not None else None
            if st is None or iv is None:
                continue
            kinds.add(theory_kind(st.cell.policy, st.cell.hyper))
            y[i], lo[i], hi[i] = iv.estimate.value, iv.lower.value, iv.upper.value
            cens[i] = 0.0 if iv.estimate.exact else 1.0
        if not np.isfinite(y).any():
            continue
        censored = cens == 1.0
        out.measured[m] = (y, lo, hi, censored)
        kind = kinds.pop() if len(kinds) == 1 else None
        if kind is None:
            continue
        bound = np.array(
            [
                theory_updates(kind, t, int(c) if math.isfinite(c) else None)
                for t, c in zip(out.tau_max, out.tau_c, strict=True)
            ]
        )
        ref = next(
            (i for i in range(len(y)) if math.isfinite(y[i]) and not censored[i]),
            None,
        )
        if ref is not None and math.isfinite(bound[ref]) and bound[ref] > 0:
            out.theory[m] = y[ref] * bound / bound[ref]
    return out if out.measured else None


def scaling_figure(
    a: Analysis, stats: dict[Key, CellStats], out: Path
) -> tuple[Path, str] | None:
    """Write ``scaling.png`` (see the module docstring); ``None`` when it does not
    apply (:func:`scaling_data`)."""
    data = scaling_data(a, stats)
    if data is None:
        return None
    import clipasync.reports.plots as plots

    n = len(a.points)
    series = {
        m: (*data.measured[m], data.theory.get(m, np.full(n, math.nan)))
        for m in data.measured
    }
    path = plots.scaling(
        data.panels(),
        series,
        out / "scaling.png",
        ylabel="updates to target (median over seeds)",
        title=f"{a.config.get('name', '')}: updates to target vs delay",
    )
    return path, CAPTION
