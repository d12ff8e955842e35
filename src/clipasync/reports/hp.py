"""High-probability report: the bad tail of runs over many seeds, per method.

A high-probability guarantee (Erickson & Johansson 2026, Thm 4.3: with probability
at least 1 − δ, (1/T) Σ_{t<T} ‖∇f(x_t)‖ <= ε) is, to a user, the statement "in 9
runs out of 10 (or 99 of 100) this method reaches the target by time t". This module
measures exactly that:

1. **Grid point per method.** If a method has several grid points, a *pilot* runs
   the config as ``clipasync run`` would (its own seeds) into ``OUT/pilot`` and the
   best grid point of each (sweep point, method) is kept (same rule as the report:
   smallest mean time to target). A method with one grid point needs no pilot.
2. **Many seeds.** Each chosen grid point is rerun over ``seeds`` seeds (default 20)
   numbered from ``seed_offset`` = 1000, disjoint from the pilot's seeds so that the
   selection does not flatter the quantiles, in parallel processes through
   :func:`clipasync.experiments.runner.run_experiment` (resumable: rerunning into the
   same OUT skips finished runs). These runs ignore the config's target and use the
   whole time budget, so that every run's average gradient norm covers the same
   horizon.
3. **Quantities per run.** Time to target: the first evaluation time at which the
   target holds (the engine's rule, recomputed from ``evals.csv``); a run that never
   reaches it is *censored* and counts as +inf. Average gradient norm: the mean of
   ‖∇f(x_t)‖ over the run's evaluations (every ``eval_every``), the paper's
   accuracy measure; a diverged run gives +inf.
4. **Summary.** Per method: the median, 90 % and 99 % quantiles over seeds where the
   number of seeds resolves them (n(1 − q) >= 1: 99 % needs 100 seeds), with the
   censoring convention of :mod:`clipasync.diagnostics.quantiles` (a quantile that
   falls among the censored runs is "not reached"), and the fraction of seeds that
   never reached the target. Written to ``hp_summary.csv``, ``hp_report.md`` and
   ``hp_ecdf.png`` (ECDF of the time to target per method; a curve that ends below 1
   leaves the never-reached fraction above it); see
   :mod:`clipasync.reports.hp_report`.

Command line: ``clipasync hp experiments/stragglers.yaml --seeds 20 --out DIR``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.diagnostics.quantiles import (
    DEFAULT_LEVELS,
    average_gradient_norm,
    summarize,
)
from clipasync.engine import Target
from clipasync.errors import ConfigError
from clipasync.experiments.analysis import analyse
from clipasync.experiments.protocol import SELECTION_FILE
from clipasync.experiments.rundir import RUNS_DIR, load_runs
from clipasync.experiments.runner import run_experiment
from clipasync.experiments.schema import ExperimentConfig, validate_config
from clipasync.io import read_columns, read_json
from clipasync.reports.hp_report import MethodTail, write_hp_report

#: First seed of the high-probability runs (pilot seeds are usually 0, 1, 2).
SEED_OFFSET = 1000

_LIST_FIELDS = ("stepsize", "max_norm", "max_delay", "batch_size")


def _point_label(point: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) or "-"


def _point_dir(point: dict[str, Any]) -> str:
    if not point:
        return "hp"
    text = "-".join(f"{k.split('.')[-1]}{v}" for k, v in point.items())
    return "hp-" + "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)


def narrowed_config(
    config: ExperimentConfig,
    best: dict[str, dict[str, Any]],
    *,
    seeds: int,
    seed_offset: int = SEED_OFFSET,
) -> ExperimentConfig:
    """Return ``config`` (without sweep) with one grid point per method and new seeds.

    The target is removed from the stop rule (runs use the whole budget; the time to
    target is recomputed from the evaluations) and per-arrival records are off.

    Args:
        config: A config without sweep (``config.at(point)``).
        best: Method → grid point (as in :meth:`MethodConfig.grid`).
        seeds: Number of seeds.
        seed_offset: First seed.

    Raises:
        ConfigError: If the result does not validate.
    """
    raw = config.model_dump(mode="json", exclude={"sweep"}, exclude_unset=True)
    raw["name"] = f"{config.name}-hp"
    raw["seeds"] = list(range(seed_offset, seed_offset + seeds))
    raw["record_arrivals"] = False
    raw["stop"].pop("target", None)
    # The study is its own protocol: fresh seeds for one point per method.
    raw.pop("protocol", None)
    methods: dict[str, Any] = {}
    for name, hyper in best.items():
        m = dict(raw["methods"][name])
        # A relative grid (effective_step, max_norm as a noise quantile) is replaced
        # by the resolved numbers the best run used.
        m.pop("effective_step", None)
        for key in _LIST_FIELDS:
            m.pop(key, None)
            if hyper.get(key) is not None:
                m[key] = [hyper[key]]
        methods[name] = m
    raw["methods"] = methods
    if raw.get("reference") not in methods:
        raw.pop("reference", None)
    return validate_config(raw)


def _best_points(
    config: ExperimentConfig,
    out: Path,
    *,
    pilot: bool,
    workers: int | None,
    progress: bool,
) -> list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
    """Return (sweep point, method → best grid point) for every sweep point."""
    points = config.sweep_points()
    single = all(m.grid_size() == 1 for m in config.methods.values())
    if single:
        return [
            (
                p,
                {
                    n: m.grid()[0]
                    for n, m in (config.at(p) if p else config).methods.items()
                },
            )
            for p in points
        ]
    if not pilot:
        many = [n for n, m in config.methods.items() if m.grid_size() > 1]
        raise ConfigError(
            f"method {many[0]!r} has {config.methods[many[0]].grid_size()} grid "
            "points: run with the pilot (default) or narrow the grid with --set"
        )

    pilot_dir = out / "pilot"
    run_experiment(config, pilot_dir, progress=progress, workers=workers)
    if config.protocol is not None:
        # The protocol already picked each method on its tuning seeds.
        selection = read_json(pilot_dir / SELECTION_FILE)
        picks: dict[str, dict[str, dict[str, Any]]] = {}
        for entry in selection["entries"]:
            label = json.dumps(entry["sweep"], sort_keys=True)
            picks.setdefault(label, {})[entry["method"]] = entry["pick"]["hyper"]
        return [(p, picks.get(json.dumps(p, sort_keys=True), {})) for p in points]
    analysis = analyse(load_runs(pilot_dir), config.resolved())
    result = []
    for p in points:
        key = tuple(p.get(k) for k in analysis.sweep_keys)
        best = {
            name: analysis.best[(key, name)].hyper
            for name in config.methods
            if (key, name) in analysis.best
        }
        result.append((p, best))
    return result


def _read_evals(run_dir: Path) -> dict[str, np.ndarray[Any, Any]]:
    path = run_dir / "evals.csv"
    return read_columns(path) if path.is_file() else {}


def time_to_target(
    times: npt.ArrayLike, values: npt.ArrayLike, target: Target
) -> float:
    """Return the first evaluation time at which ``target`` holds, else +inf.

    Examples:
        >>> time_to_target([0, 1, 2], [0.5, 0.1, 0.05], Target("loss", 0.1))
        1.0
        >>> time_to_target([0, 1], [0.5, 0.2], Target("loss", 0.1))
        inf
    """
    ts = np.asarray(times, dtype=np.float64)
    vs = np.asarray(values, dtype=np.float64)
    for t, v in zip(ts.tolist(), vs.tolist(), strict=True):
        if math.isfinite(v) and target.reached({target.metric: float(v)}):
            return float(t)
    return math.inf


def run_high_probability(
    config: ExperimentConfig,
    out: str | Path,
    *,
    seeds: int = 20,
    pilot: bool = True,
    workers: int | None = None,
    progress: bool = True,
    seed_offset: int = SEED_OFFSET,
    levels: Sequence[float] = DEFAULT_LEVELS,
) -> list[MethodTail]:
    """Run the high-probability study of a config and write its report.

    Args:
        config: Validated experiment with ``stop.target`` and ``eval_every``.
        out: Output directory (``pilot/``, ``hp*/`` run directories and the
            ``hp_*`` files).
        seeds: Seeds per method (>= 2; >= 20 for a 90 % quantile, 100 for 99 %).
        pilot: Pick each method's grid point by a pilot run (else every method
            must have one grid point).
        workers: Worker processes (default: the config's).
        progress: Show progress bars.
        seed_offset: First seed of the runs.
        levels: Quantile levels wanted (kept where the seeds resolve them).

    Returns:
        One entry per (sweep point, method).

    Raises:
        ConfigError: Without a target or ``eval_every``, with fewer than 2 seeds,
            or on an invalid config.
    """
    if config.stop.target is None:
        raise ConfigError("hp: the config needs stop.target (time to target)")
    if config.eval_every is None:  # pragma: no cover - validation requires it
        raise ConfigError("hp: the config needs eval_every")
    if seeds < 2:
        raise ConfigError(f"--seeds must be at least 2, got {seeds}")
    target = Target(
        config.stop.target.metric,
        config.stop.target.value,
        direction=config.stop.target.direction,
    )
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tails: list[MethodTail] = []
    for point, best in _best_points(
        config, out_dir, pilot=pilot, workers=workers, progress=progress
    ):
        base = config.at(point) if point else config
        hp = narrowed_config(base, best, seeds=seeds, seed_offset=seed_offset)
        run_dir = out_dir / _point_dir(point)
        run_experiment(hp, run_dir, progress=progress, workers=workers)
        by_method: dict[str, list[dict[str, Any]]] = {}
        for summary in load_runs(run_dir):
            by_method.setdefault(summary["method"], []).append(summary)
        for name in best:
            runs = by_method.get(name, [])
            if not runs:
                continue
            times, norms = [], []
            for r in runs:
                ev = _read_evals(run_dir / RUNS_DIR / str(r["run_id"]))
                if target.metric not in ev:
                    raise ConfigError(
                        f"hp: target metric {target.metric!r} was not evaluated"
                    )
                times.append(time_to_target(ev["time"], ev[target.metric], target))
                g = ev.get("grad_norm")
                norms.append(average_gradient_norm(g) if g is not None else math.nan)
            tails.append(
                MethodTail(
                    point=_point_label(point),
                    method=name,
                    hyper=best[name],
                    times=times,
                    avg_grad_norms=norms,
                    time_summary=summarize(times, levels),
                    grad_summary=summarize(norms, levels),
                )
            )
    write_hp_report(tails, out_dir, config=config, seeds=seeds, seed_offset=seed_offset)
    return tails
