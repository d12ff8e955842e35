"""The theory calculator behind ``clipasync theory``: inputs, estimates, one table.

It gathers the constants (from options, or estimated from a config's problem with
``--estimate``), the compute-time model (from options or from the config), and
prints :func:`clipasync.theory.theory_report` together with the simulated update rate
and delay quantiles of the timing model (:func:`clipasync.sim.simulate_timing`).

Which numbers are whose (also printed under the table):

* the **rates** (the three terms of Thm 4.2/4.3 of Erickson & Johansson 2026) are
  the paper's, constants omitted;
* the clipped-ASGD **stepsize, max_norm and horizon T** use constants
  *reconstructed* by a third-party audit of the proof (PAPER.md §4.2), with a free
  safety constant K (default 16): orders of magnitude, not tuned values;
* vanilla (O(σ²LΔ/ε⁴ + τ_max LΔ/ε²), grows with the maximum delay) and
  delay-adaptive (O(σ²LΔ/ε⁴ + nLΔ/ε²)) counts and the optimal time of the fixed
  computation model (Tyurin & Richtárik 2023) are given up to absolute constants;
* update rate and delays are exact for fixed times (Σ 1/τ_i) and simulated for
  every model.

Examples::

    clipasync theory --L 1 --delta 1 --sigma 0.5 --theta 2 --eps 0.1 --slow-time 8
    clipasync theory --config experiments/stragglers.yaml --estimate --eps 0.05
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipasync.experiments.config import ExperimentConfig
from clipasync.errors import ConfigError
from clipasync.seeding import Stream, stream
from clipasync.sim import simulate_timing
from clipasync.theory import (
    TheoryReport,
    clipped_asgd_parameters,
    delay_adaptive_asgd_updates,
    estimate_noise_sigma,
    estimate_smoothness,
    theory_report,
)
from clipasync.timing import ComputeTimeModel

NOTES = """\
Sources: rate terms = the paper's theorems (Erickson & Johansson 2026), constants
omitted. Clipped-ASGD stepsize, max_norm and T = constants RECONSTRUCTED by a
third-party audit (PAPER.md 4.2; not printed in the paper), safety constant K.
Vanilla / delay-adaptive / optimal time: literature rates, absolute constants
omitted (compare orders, not values). Vanilla uses the simulated maximum delay.
Optimal time: Tyurin & Richtarik (2023) on the norm scale (eps^2 in their bound),
with the timing model's mean compute times as the fixed times tau_i."""


@dataclass(frozen=True)
class Constants:
    """The problem constants the calculator needs, with where each came from.

    Attributes:
        L: Smoothness.
        delta: Initial gap f(x_0) − inf f.
        sigma: Noise level (sub-Weibull σ; also used as the baselines' std).
        theta: Sub-Weibull tail parameter.
        zeta: Heterogeneity (0 for Algorithm 1).
        sources: Quantity → "input", "default" or "estimated (...)".
    """

    L: float
    delta: float
    sigma: float
    theta: float
    zeta: float
    sources: dict[str, str]


DEFAULTS = {"L": 1.0, "delta": 1.0, "sigma": 1.0, "theta": 1.0, "zeta": 0.0}


def resolve_constants(
    given: dict[str, float | None],
    *,
    config: ExperimentConfig | None = None,
    estimate: bool = False,
    samples: int = 5_000,
    seed: int = 0,
) -> Constants:
    """Fill in L, Δ, σ, θ, ζ from options, estimates or defaults (in that order).

    With ``estimate``, at the problem's initial point x_0: L by power iteration on
    finite-difference Hessian-vector products
    (:func:`~clipasync.theory.estimate_smoothness`, a lower bound on the global L),
    σ and θ from ``samples`` noise norms
    (:func:`~clipasync.theory.estimate_noise_sigma`), and Δ = f(x_0) − f* when the
    problem knows f* (``f_star``), else f(x_0) (losses are >= 0). Options given
    explicitly win over estimates.

    Raises:
        ConfigError: If ``estimate`` is set without a config.
    """
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for key, value in given.items():
        if value is not None:
            values[key] = float(value)
            sources[key] = "input"
    if estimate:
        if config is None:
            raise ConfigError("--estimate needs --config CONFIG")
        from clipasync.experiments.runner import build_problem

        point = config.sweep_points()[0]
        cfg = config.at(point) if point else config
        problem = build_problem(cfg.problem.model_dump(mode="json", exclude_none=True))
        x0 = problem.initial_point()
        if "L" not in values:
            values["L"] = estimate_smoothness(
                problem, x0, stream(seed, Stream.PROBLEM, 0)
            )
            sources["L"] = "estimated (power iteration at x0)"
        if "delta" not in values:
            f_star = getattr(problem, "f_star", None)
            f0 = problem.loss(x0)
            values["delta"] = f0 - float(f_star) if f_star is not None else f0
            sources["delta"] = (
                "estimated (f(x0) - f*)" if f_star is not None else "f(x0) (f* >= 0)"
            )
        if "sigma" not in values or "theta" not in values:
            est = estimate_noise_sigma(
                problem, x0, stream(seed, Stream.ORACLE, 0), samples
            )
            for key, value in (("sigma", est.sigma), ("theta", est.theta)):
                if key not in values:
                    values[key] = value
                    sources[key] = f"estimated ({samples} noise norms at x0)"
    for key, default in DEFAULTS.items():
        if key not in values:
            values[key] = default
            sources[key] = "default"
    return Constants(
        L=values["L"],
        delta=values["delta"],
        sigma=values["sigma"],
        theta=values["theta"],
        zeta=values["zeta"],
        sources=sources,
    )


@dataclass(frozen=True)
class TheoryTable:
    """Everything ``clipasync theory`` prints.

    Attributes:
        constants: Inputs and their sources.
        report: The calculator's numbers.
        timing_label: Description of the timing model.
        simulated_rate: Simulated updates per time unit (Algorithm 1).
        delay_quantiles: Simulated delay (p50, p90, p99, max).
        events: Number of simulated updates.
    """

    constants: Constants
    report: TheoryReport
    timing_label: str
    simulated_rate: float
    delay_quantiles: tuple[float, float, float, float]
    events: int

    def to_text(self) -> str:
        """Return the inputs, the calculator's table and the notes as text."""
        c = self.constants
        lines = ["inputs:"]
        for key in ("L", "delta", "sigma", "theta", "zeta"):
            lines.append(f"  {key:<6} = {getattr(c, key):.4g}   ({c.sources[key]})")
        lines.append(f"  timing = {self.timing_label}")
        lines.append("")
        rows = self.report.rows()
        p50, p90, p99, dmax = self.delay_quantiles
        sim = f"simulated, {self.events} updates"
        rows += [
            ("simulated updates/time", f"{self.simulated_rate:.4g}", sim),
            ("simulated delay p50/p90/p99", f"{p50:g}/{p90:g}/{p99:g}", sim),
            ("simulated max delay", f"{dmax:g}", sim),
        ]
        header = ("quantity", "value", "source")
        all_rows = [header, *rows]
        w0 = max(len(r[0]) for r in all_rows)
        w1 = max(len(r[1]) for r in all_rows)
        table = [f"{a:<{w0}}  {b:>{w1}}  {s}".rstrip() for a, b, s in all_rows]
        table.insert(1, "-" * max(len(t) for t in table))
        return "\n".join([*lines, *table, "", NOTES])


def theory_table(
    timing: ComputeTimeModel,
    constants: Constants,
    *,
    eps: float,
    delta_prob: float | None = None,
    concurrency: int | None = None,
    K: float = 16.0,
    events: int = 100_000,
    seed: int = 0,
    timing_label: str = "",
) -> TheoryTable:
    """Compute the theory report for a timing model and constants.

    The fixed times τ_i of the lower bound and of the exact rate are the model's
    mean compute times (exact for fixed-time models). Vanilla ASGD's τ_max is the
    maximum delay over ``events`` simulated updates of Algorithm 1.

    Args:
        timing: Compute-time model (its workers are the concurrency by default).
        constants: L, Δ, σ, θ, ζ.
        eps: Norm-scale target ε.
        delta_prob: Failure probability δ (high-probability variant, Thm 4.3).
        concurrency: τ_C if not the number of workers (e.g. fewer jobs in flight).
        K: Safety constant of the reconstructed clipped-ASGD parameters.
        events: Updates to simulate.
        seed: Seed of the timing simulation.
        timing_label: Description printed with the table.

    Raises:
        ConfigError: On invalid inputs.
    """
    if events < 1:
        raise ConfigError(f"--events must be positive, got {events}")
    sim = simulate_timing(timing, events, seed)
    d = sim.delays
    quantiles = np.quantile(d, [0.5, 0.9, 0.99]) if d.size else np.zeros(3)
    max_delay = float(d.max()) if d.size else 0.0
    report = theory_report(
        timing.mean_times(),
        L=constants.L,
        delta=constants.delta,
        sigma=constants.sigma,
        theta=constants.theta,
        eps=eps,
        zeta=constants.zeta,
        delta_prob=delta_prob,
        max_delay=max_delay,
        K=K,
    )
    if concurrency is not None and concurrency != report.concurrency:
        report = dataclasses.replace(
            report,
            concurrency=concurrency,
            clipped=clipped_asgd_parameters(
                L=constants.L,
                delta=constants.delta,
                sigma=constants.sigma,
                theta=constants.theta,
                eps=eps,
                concurrency=concurrency,
                zeta=constants.zeta,
                delta_prob=delta_prob,
                K=K,
            ),
            delay_adaptive_updates=delay_adaptive_asgd_updates(
                L=constants.L,
                delta=constants.delta,
                sigma=constants.sigma,
                eps=eps,
                concurrency=concurrency,
            ),
        )
    return TheoryTable(
        constants=constants,
        report=report,
        timing_label=timing_label or f"{timing.num_workers} workers",
        simulated_rate=sim.updates_per_time,
        delay_quantiles=(
            float(quantiles[0]),
            float(quantiles[1]),
            float(quantiles[2]),
            max_delay,
        ),
        events=events,
    )


def describe_timing(timing: dict[str, Any]) -> str:
    """Return ``kind(key=value, ...)`` for a resolved timing config."""
    params = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in timing.items()
        if k != "kind" and not (isinstance(v, list) and len(v) > 8)
    )
    return f"{timing['kind']}({params})"


def check_eps(eps: float) -> float:
    """Validate the target ε (> 0, finite) with a one-line error."""
    if not (math.isfinite(eps) and eps > 0):
        raise ConfigError(f"--eps must be a positive number, got {eps}")
    return eps
