"""The ``noise``, ``theory`` and ``hp`` commands (registered in
:mod:`clipasync.cli.app`).

Examples::

    clipasync noise experiments/stragglers.yaml --samples 20000 --at init --at sgd:500
    clipasync theory --L 1 --delta 1 --sigma 0.5 --theta 2 --eps 0.1 --slow-time 8
    clipasync theory --config experiments/stragglers.yaml --estimate --eps 0.05
    clipasync hp experiments/stragglers.yaml --seeds 20 --out reports/hp

Errors follow the CLI's convention: ``error: <one line>`` on stderr, exit status 2.
The work is done by :mod:`clipasync.reports.noise`,
:mod:`clipasync.reports.theory_table` and :mod:`clipasync.reports.hp`; this module
only parses options and prints.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from clipasync.cli.guard import guard
from clipasync.cli.options import (
    EventsOpt,
    MeanOpt,
    NoProgressOpt,
    NumFastOpt,
    NumSlowOpt,
    NumWorkersOpt,
    SeedOpt,
    SetOpt,
    SlowTimeOpt,
    WorkersOpt,
    timing_from_options,
)
from clipasync.errors import ConfigError
from clipasync.experiments.build import build_timing
from clipasync.experiments.loading import load_config
from clipasync.reports.hp import run_high_probability
from clipasync.reports.hp_report import format_text
from clipasync.reports.noise import format_table, noise_report
from clipasync.reports.theory_table import (
    check_eps,
    describe_timing,
    format_theory_table,
    resolve_constants,
    theory_table,
)


def noise_cmd(
    config: Annotated[Path, typer.Argument(help="Experiment YAML (its problem).")],
    samples: Annotated[
        int, typer.Option(help="Stochastic gradients per checkpoint.", min=100)
    ] = 10_000,
    at: Annotated[
        list[str] | None,
        typer.Option(
            help="Checkpoint: init, sgd:K (K SGD steps from x0), optimum. Repeatable."
        ),
    ] = None,
    k: Annotated[
        int | None, typer.Option(help="Top order statistics (default top 10 %).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed.", min=0)] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for noise.json and noise_tails.png."),
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Sample gradient-noise norms, estimate theta and Hill alpha, plot the tail.

    θ is the sub-Weibull tail parameter (Vladimirova et al. 2020; 1/2 sub-Gaussian,
    1 sub-exponential); Hill α with a 90 % bootstrap interval tests for a
    polynomial tail. Without --out the plot goes to reports/noise-<name>-<time>.
    """

    def go() -> tuple[str, Path]:
        cfg = load_config(config, set_ or [])
        target = out
        if target is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            target = Path("reports") / f"noise-{cfg.name}-{stamp}"
        results = noise_report(
            cfg, samples=samples, at=at or ["init"], seed=seed, k=k, out=target
        )
        return format_table(results), target

    text, target = guard(go)
    typer.echo(text)
    typer.echo(str(target / "noise_tails.png"))


def theory_cmd(
    L: Annotated[float | None, typer.Option("--L", help="Smoothness L.")] = None,
    delta: Annotated[
        float | None, typer.Option(help="Initial gap f(x0) - inf f.")
    ] = None,
    sigma: Annotated[float | None, typer.Option(help="Noise level sigma.")] = None,
    theta: Annotated[
        float | None, typer.Option(help="Sub-Weibull tail parameter theta.")
    ] = None,
    zeta: Annotated[
        float | None, typer.Option(help="Heterogeneity zeta (Alg. 2).")
    ] = None,
    eps: Annotated[float, typer.Option(help="Target on the gradient norm.")] = 0.1,
    delta_prob: Annotated[
        float | None,
        typer.Option(help="Failure probability delta (high-probability variant)."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="tau_C (default: number of workers).", min=1)
    ] = None,
    safety: Annotated[
        float, typer.Option("--K", help="Safety constant K of the audit's choice.")
    ] = 16.0,
    config: Annotated[
        Path | None,
        typer.Option(help="Experiment YAML: timing (first sweep point) and problem."),
    ] = None,
    estimate: Annotated[
        bool,
        typer.Option(help="Estimate L, delta, sigma, theta from the config's problem."),
    ] = False,
    samples: Annotated[
        int, typer.Option(help="--estimate: noise samples.", min=100)
    ] = 5_000,
    timing_kind: Annotated[
        str, typer.Option(help="Timing kind (without --config).")
    ] = "two_speed",
    num_fast: NumFastOpt = 8,
    num_slow: NumSlowOpt = 8,
    slow_time: SlowTimeOpt = 4.0,
    num_workers: NumWorkersOpt = 16,
    mean: MeanOpt = 1.0,
    events: EventsOpt = 100_000,
    seed: SeedOpt = 0,
) -> None:
    """Theory calculator: clipped-ASGD stepsize and max_norm, predicted updates,
    optimal time, and the timing model's simulated update rate and delays.

    Constants not given default to 1 (zeta to 0) unless --estimate reads them off
    the config's problem; the table says where each came from.
    """

    def go() -> str:
        check_eps(eps)
        cfg = load_config(config) if config is not None else None
        if cfg is not None:
            point = cfg.sweep_points()[0]
            c = cfg.at(point) if point else cfg
            timing = c.timing.model_dump(mode="json", exclude_none=True)
        else:
            if estimate:
                raise ConfigError("--estimate needs --config CONFIG")
            timing = timing_from_options(
                timing_kind,
                num_fast=num_fast,
                num_slow=num_slow,
                slow_time=slow_time,
                num_workers=num_workers,
                mean=mean,
            )
        constants = resolve_constants(
            {"L": L, "delta": delta, "sigma": sigma, "theta": theta, "zeta": zeta},
            config=cfg,
            estimate=estimate,
            samples=samples,
            seed=seed,
        )
        table = theory_table(
            build_timing(timing),
            constants,
            eps=eps,
            delta_prob=delta_prob,
            concurrency=concurrency,
            K=safety,
            events=events,
            seed=seed,
            timing_label=describe_timing(timing),
        )
        return format_theory_table(table)

    typer.echo(guard(go))


def hp_cmd(
    config: Annotated[Path, typer.Argument(help="Experiment YAML (with a target).")],
    seeds: Annotated[
        int, typer.Option(help="Seeds per method (>= 20 for a 90 % quantile).", min=2)
    ] = 20,
    out: Annotated[
        Path | None,
        typer.Option(help="Output directory (default reports/<name>-hp-<time>)."),
    ] = None,
    pilot: Annotated[
        bool,
        typer.Option(
            help="Pick each method's best grid point with a pilot run of the config."
        ),
    ] = True,
    set_: SetOpt = None,
    workers: WorkersOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """High-probability report: quantiles over many seeds of the time to target
    and of the average gradient norm, and the fraction never reaching the target.

    Each method runs at its best grid point (chosen by a pilot over the config's
    seeds) over --seeds new seeds, in parallel; writes hp_summary.csv,
    hp_report.md and hp_ecdf.png.
    """

    def go() -> tuple[str, Path]:
        cfg = load_config(config, set_ or [])
        target = out
        if target is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            target = Path("reports") / f"{cfg.name}-hp-{stamp}"
        t0 = time.perf_counter()
        tails = run_high_probability(
            cfg,
            target,
            seeds=seeds,
            pilot=pilot,
            workers=workers,
            progress=not no_progress,
        )
        if not no_progress:
            typer.echo(f"done in {time.perf_counter() - t0:.1f} s", err=True)
        return format_text(tails), target

    text, target = guard(go)
    typer.echo(text)
    typer.echo(str(target / "hp_report.md"))
