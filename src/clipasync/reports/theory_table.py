"""The theory calculator behind ``clipasync theory``: inputs, estimates, one table.

It gathers the constants (from options, or estimated from a config's problem with
``--estimate``), the compute-time model (from options or from the config), and
prints :func:`clipasync.theory.theory_report` together with the simulated update
rate and delay quantiles of the timing model (:func:`clipasync.sim.simulate_timing`).
The text formatting of the theory numbers lives here too (:func:`theory_rows`,
:func:`format_theory_report`, :func:`format_theory_table`): the theory floor only
computes.

Which numbers are whose (also printed under the table):

* the **rates** (the three terms of Thm 4.2/4.3 of Erickson & Johansson 2026) are
  the paper's, constants omitted;
* the clipped-ASGD **stepsize, max_norm and horizon T** use constants
  *reconstructed* by a third-party audit of the proof of Thm 4.2 (the paper does
  not print them), with a free safety constant K (default 16): orders of
  magnitude, not tuned values;
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

from clipasync.errors import ConfigError
from clipasync.experiments.build import build_problem
from clipasync.experiments.schema import ExperimentConfig
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
third-party audit (arXiv 2606.13287, Thm 4.2; not printed in the paper), safety
constant K.
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
    """Everything ``clipasync theory`` prints (:func:`format_theory_table`).

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


def theory_rows(report: TheoryReport) -> list[tuple[str, str, str]]:
    """Return the (quantity, value, source) rows of :func:`format_theory_report`."""
    c = report.clipped
    lam = report.update_rate
    return [
        ("target eps (norm scale)", f"{report.eps:.4g}", "input"),
        ("concurrency tau_C", f"{report.concurrency}", "input"),
        ("max delay tau_max", f"{report.max_delay:.4g}", "input or fixed model"),
        ("update rate sum 1/tau_i", f"{lam:.4g}", "exact, Alg. 1"),
        ("clipped: stepsize eta", f"{c.stepsize:.4g}", "audit constants"),
        ("clipped: max_norm c", f"{c.max_norm:.4g}", "audit constants"),
        (
            "clipped: updates T",
            f"{c.num_updates:.4g}",
            f"audit constants, K={c.K:g}",
        ),
        (
            "clipped: time T/rate",
            f"{c.num_updates / lam:.4g}",
            f"audit constants, K={c.K:g}",
        ),
        ("clipped: eta regime", c.stepsize_regime, "audit constants"),
        (
            "clipped: rate term 1",
            f"{c.rate_terms[0]:.4g}",
            f"Thm {c.theorem} rate, no consts",
        ),
        (
            "clipped: rate term 2",
            f"{c.rate_terms[1]:.4g}",
            f"Thm {c.theorem} rate, no consts",
        ),
        (
            "clipped: rate term 3",
            f"{c.rate_terms[2]:.4g}",
            f"Thm {c.theorem} rate, no consts",
        ),
        (
            "vanilla ASGD updates",
            f"{report.vanilla_updates:.4g}",
            "O(), no consts",
        ),
        (
            "vanilla ASGD time",
            f"{report.vanilla_updates / lam:.4g}",
            "O(), no consts",
        ),
        (
            "delay-adaptive updates",
            f"{report.delay_adaptive_updates:.4g}",
            "O(), no consts",
        ),
        (
            "optimal time (Ringmaster)",
            f"{report.optimal_time.value:.4g}",
            f"Theta(), no consts, m={report.optimal_time.m}",
        ),
    ]


def format_theory_report(report: TheoryReport) -> str:
    """Return the report as a small left/right-aligned plain-text table."""
    return _aligned(theory_rows(report))


def _aligned(rows: list[tuple[str, str, str]]) -> str:
    """Return (quantity, value, source) rows under a header, values right-aligned."""
    header = ("quantity", "value", "source")
    rows = [header, *rows]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {s}".rstrip() for a, b, s in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def format_theory_table(table: TheoryTable) -> str:
    """Return the inputs, the calculator's table and the notes: ``clipasync theory``."""
    c = table.constants
    lines = ["inputs:"]
    for key in ("L", "delta", "sigma", "theta", "zeta"):
        lines.append(f"  {key:<6} = {getattr(c, key):.4g}   ({c.sources[key]})")
    lines.append(f"  timing = {table.timing_label}")
    lines.append("")
    rows = theory_rows(table.report)
    p50, p90, p99, dmax = table.delay_quantiles
    sim = f"simulated, {table.events} updates"
    rows += [
        ("simulated updates/time", f"{table.simulated_rate:.4g}", sim),
        ("simulated delay p50/p90/p99", f"{p50:g}/{p90:g}/{p99:g}", sim),
        ("simulated max delay", f"{dmax:g}", sim),
    ]
    return "\n".join([*lines, _aligned(rows), "", NOTES])
