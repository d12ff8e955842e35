"""The ``clipasync`` command line.

Examples::

    clipasync run experiments/stragglers.yaml            # the demo (make demo)
    clipasync run experiments/quick.yaml --set seeds=[0] --out /tmp/q --workers 1
    clipasync report reports/stragglers-20260101-120000  # rebuild report and plots
    clipasync run experiments/paper_fig2_fashion_mnist.yaml --profile quick
    clipasync compare reports/fig2 reports/fig3 --out reports/compare
    clipasync list                                       # methods, timings, problems
    clipasync timing --kind two_speed --slow-time 8      # update rate and delays
    clipasync timing experiments/stragglers.yaml

A configuration error prints ``error: <one line>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from clipasync.cli.diagnostics import hp_cmd, noise_cmd, theory_cmd
from clipasync.cli.guard import check_run_options, guard, one_line_usage_errors
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
from clipasync.experiments.grid import expand
from clipasync.experiments.loading import load_config
from clipasync.experiments.ray_backend import (
    export_trace,
    resume_experiment,
    run_experiment_on_ray,
)
from clipasync.experiments.runner import run_experiment
from clipasync.experiments.timing_schema import TIMING_KINDS
from clipasync.policies.registry import entries
from clipasync.problems import PROBLEMS
from clipasync.problems.noise import NOISES
from clipasync.reports.compare import compare_reports
from clipasync.reports.report import build_ray_report, build_report
from clipasync.sim import simulate_timing

one_line_usage_errors()
app = typer.Typer(
    name="clipasync",
    help="Asynchronous SGD with clipping against stragglers: run, report, inspect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    set_: SetOpt = None,
    out: Annotated[
        str | None,
        typer.Option(help="Report directory (default reports/<name>-<timestamp>)."),
    ] = None,
    workers: WorkersOpt = None,
    no_progress: NoProgressOpt = False,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Profile of the file's `profiles:` (e.g. quick, full), applied "
            "before --set; default: the file's default_profile."
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(help="sim (the simulator) or ray (real asynchronous training)."),
    ] = "sim",
    address: Annotated[
        str | None,
        typer.Option(help="ray: join this Ray cluster (HOST:PORT), not a local Ray."),
    ] = None,
    time_unit: Annotated[
        float | None,
        typer.Option(
            help="ray: seconds per time unit of the config [default: 0.05].",
            min=1e-6,
            max=3600,
        ),
    ] = None,
    no_inject: Annotated[
        bool,
        typer.Option(
            "--no-inject", help="ray: no injected compute times (real stragglers only)."
        ),
    ] = False,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            help="ray: checkpoint the driver every N updates [default: 200].", min=1
        ),
    ] = None,
    no_batch: Annotated[
        bool,
        typer.Option(
            "--no-batch",
            help="sim: run every configuration on its own, not side by side "
            "(batch_grid: false).",
        ),
    ] = False,
) -> None:
    """Run an experiment grid (simulator or Ray) and write its report directory.

    Rerunning into the same --out skips the runs that already finished.
    """

    def go() -> Path:
        check_run_options(
            backend,
            out,
            {
                "--address": address,
                "--time-unit": time_unit,
                "--no-inject": no_inject or None,
                "--checkpoint-every": checkpoint_every,
            },
            {"--no-batch": no_batch or None},
        )
        cfg = load_config(config, set_ or [], profile=profile)
        specs = expand(cfg)
        target = Path(out) if out is not None else None
        if target is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            target = Path("reports") / f"{cfg.name}-{stamp}"
        where.append(target)
        if not no_progress:
            stages = " (tuning stage; refine and eval follow)" if cfg.protocol else ""
            typer.echo(f"{cfg.name}: {len(specs)} runs{stages} -> {target}", err=True)
        t0 = time.perf_counter()
        if backend == "ray":
            path = run_experiment_on_ray(
                cfg,
                target,
                address=address,
                time_unit_s=0.05 if time_unit is None else time_unit,
                inject_delays=not no_inject,
                checkpoint_every=200 if checkpoint_every is None else checkpoint_every,
                source=(config.read_text(), list(set_ or []), profile),
            )
            build_ray_report(path)
        elif backend == "sim":
            path = run_experiment(
                cfg,
                target,
                progress=not no_progress,
                workers=workers,
                batch=False if no_batch else None,
            )
            build_report(path)
        else:
            raise ConfigError(f"unknown backend {backend!r}; choose one of: sim, ray")
        if not no_progress:
            typer.echo(f"done in {time.perf_counter() - t0:.1f} s", err=True)
        return path

    where: list[Path] = []  # the report directory, once known (for Ctrl-C)
    path = guard(go, lambda: where[0] if where else None)
    typer.echo(str(path))


@app.command("resume")
def resume_cmd(
    run_dir: Annotated[
        Path, typer.Argument(help="A directory written by `run --backend ray`.")
    ],
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: as started).")
    ] = None,
) -> None:
    """Continue a Ray experiment whose driver was killed, from its checkpoints."""

    def go() -> Path:
        path = resume_experiment(run_dir, address)
        build_ray_report(path)
        return path

    typer.echo(str(guard(go, lambda: run_dir)))


@app.command("trace")
def trace_cmd(
    run: Annotated[Path, typer.Argument(help="A finished Ray run: DIR/runs/<run_id>.")],
    out: Annotated[
        Path | None, typer.Option(help="Trace CSV (default RUN/trace.csv).")
    ] = None,
) -> None:
    """Export a Ray run's measured compute times as a trace the simulator replays,
    and compare simulated with measured update rate and delays."""
    data = guard(lambda: export_trace(run, out))
    q = data["delay_quantiles_sim_vs_measured"]
    typer.echo(
        f"update rate: measured {data['measured_rate']:.4g}, simulated "
        f"{data['simulated_rate']:.4g} (ratio {data['rate_ratio']:.3f})"
    )
    typer.echo(
        f"delay p50/p90: measured {q['p50'][1]:.0f}/{q['p90'][1]:.0f}, "
        f"simulated {q['p50'][0]:.0f}/{q['p90'][0]:.0f}"
    )
    typer.echo(data["trace"])


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by `run`.")],
) -> None:
    """Rebuild summary.csv, report.md and the plots of a run directory."""
    path = guard(lambda: build_report(run_dir))
    typer.echo(str(path))


@app.command("compare")
def compare_cmd(
    reports: Annotated[
        list[Path], typer.Argument(help="Report directories written by `run`.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write comparison.md and comparison.png here."),
    ] = None,
) -> None:
    """Put several reports side by side: speedups (and the paper's) per sweep point."""
    table, path = guard(lambda: compare_reports(list(reports), out))
    typer.echo(table)
    if path is not None:
        typer.echo(str(path))


@app.command("list")
def list_cmd() -> None:
    """List the method policies, timing models, problems and noise kinds."""
    console = Console(width=100)

    def table(title: str, rows: list[tuple[str, str]]) -> None:
        t = Table(title=title, title_justify="left", show_header=False)
        t.add_column("name", style="bold")
        t.add_column("description")
        for name, desc in rows:
            t.add_row(name, desc)
        console.print(t)

    table(
        "Methods (policy: and its fields)",
        [
            (e.name, f"{e.description}; fields: {', '.join(e.fields)}")
            for e in entries()
        ],
    )
    table(
        "Timing models (timing.kind)",
        [
            (name, f"{desc}; fields: {', '.join((*req, *opt)) or '-'}")
            for name, (desc, req, opt) in TIMING_KINDS.items()
        ],
    )
    table("Problems (problem.name)", [(n, _first_line(f)) for n, f in PROBLEMS.items()])
    table(
        "Noise (problem.noise.kind)", [(n, _first_line(f)) for n, f in NOISES.items()]
    )


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@app.command("timing")
def timing_cmd(
    config: Annotated[
        Path | None, typer.Argument(help="Experiment YAML (uses its timing and sweep).")
    ] = None,
    kind: Annotated[str, typer.Option(help="Timing kind (see `clipasync list`).")] = (
        "two_speed"
    ),
    num_fast: NumFastOpt = 8,
    num_slow: NumSlowOpt = 8,
    slow_time: SlowTimeOpt = 4.0,
    num_workers: NumWorkersOpt = 16,
    mean: MeanOpt = 1.0,
    events: EventsOpt = 100_000,
    seed: SeedOpt = 0,
) -> None:
    """Simulate a timing model without gradients: update rate and delay quantiles.

    Algorithm 1 (every worker busy, re-dispatched on return); 10^5 events take well
    under a second.
    """

    def models() -> list[tuple[str, dict[str, Any]]]:
        if config is not None:
            cfg = load_config(config)
            out = []
            for point in cfg.sweep_points():
                c = cfg.at(point) if point else cfg
                t = c.timing.model_dump(mode="json", exclude_none=True)
                label = ", ".join(f"{k}={v}" for k, v in point.items()) or cfg.name
                out.append((label, t))
            return out
        t = timing_from_options(
            kind,
            num_fast=num_fast,
            num_slow=num_slow,
            slow_time=slow_time,
            num_workers=num_workers,
            mean=mean,
        )
        return [(kind, t)]

    def go() -> Table:
        table = Table(title=f"Algorithm 1, {events} updates, seed {seed}")
        for col in (
            "setting",
            "workers",
            "updates/time",
            "mean delay",
            "p50",
            "p90",
            "p99",
            "max",
            "wall ms",
        ):
            table.add_column(col, justify="right" if col != "setting" else "left")
        for label, t in models():
            model = build_timing(t)
            t0 = time.perf_counter()
            s = simulate_timing(model, events, seed, t.get("tie_break", "start"))
            ms = 1000 * (time.perf_counter() - t0)
            q = np.quantile(s.delays, [0.5, 0.9, 0.99])
            table.add_row(
                label,
                str(model.num_workers),
                f"{s.updates_per_time:.3f}",
                f"{s.mean_delay():.2f}",
                f"{q[0]:g}",
                f"{q[1]:g}",
                f"{q[2]:g}",
                str(int(s.delays.max())),
                f"{ms:.0f}",
            )
        return table

    table = guard(go)
    Console(width=110).print(table)


# Noise tails, theory calculator, high-probability report (cli/diagnostics.py).
app.command("noise")(noise_cmd)
app.command("theory")(theory_cmd)
app.command("hp")(hp_cmd)


def main() -> None:  # pragma: no cover - console entry point alias
    """Run the app (``python -m clipasync.cli.app``)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
