"""The runs of an experiment: sweep point × method × grid point × seed.

Each :class:`RunSpec` is plain data with typed parameters and a stable ``run_id`` (a
readable slug plus a short hash of its resolved settings), so a rerun into the same
output directory finds the runs that already finished and skips them. The settings
hold the grid point as its plain record ``hyper`` (:meth:`MethodConfig.grid`), with
the keys, order and types run ids have always hashed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from clipasync.errors import ConfigError
from clipasync.experiments.analysis import TUNE
from clipasync.experiments.noise_scale import noise_scale
from clipasync.experiments.relative import (
    CLIP_SCALE,
    EFFECTIVE_STEP,
    NOISE_QUANTILE,
    GridPoint,
)
from clipasync.experiments.schema import ExperimentConfig
from clipasync.policies.registry import lookup


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, as data (sent to worker processes).

    Attributes:
        run_id: Stable id: readable slug + hash of the other fields.
        method: Method name in the config.
        policy: Registered policy (``async_sgd``, ``ringmaster``, ...).
        params: The grid point: an object of the policy's parameter class.
        seed: Root seed of every random stream of the run.
        sweep: The sweep point (dotted key → value); empty without a sweep.
        problem: Resolved problem config (name, kwargs, noise).
        timing: Resolved timing config (kind and parameters).
        stop: Resolved stop rule.
        eval_every: Evaluation cadence in simulated time.
        record_arrivals: Write the per-arrival CSV.
        availability: Resolved availability block, or ``None``.
        extra_hyper: Relative coordinates of the grid point (``effective_step``,
            ``noise_quantile``, ``clip_scale``); empty for a plain grid.
        stage: ``tune``, ``refine`` or ``eval`` in a tuning protocol, else ``None``.
    """

    run_id: str
    method: str
    policy: str
    params: Any
    seed: int
    sweep: dict[str, Any]
    problem: dict[str, Any]
    timing: dict[str, Any]
    stop: dict[str, Any]
    eval_every: float | None
    record_arrivals: bool = True
    availability: dict[str, Any] | None = None
    extra_hyper: dict[str, float] = field(default_factory=dict)
    stage: str | None = None

    @property
    def hyper(self) -> dict[str, Any]:
        """The grid point as plain data (the record of run settings and summaries):
        the parameters' fields, then its relative coordinates when it has any."""
        return {**lookup(self.policy).to_hyper(self.params), **self.extra_hyper}

    def settings(self) -> dict[str, Any]:
        """Return every field but ``run_id`` and ``stage`` as plain data (what the
        id's hash covers).

        ``availability`` is left out when ``None``, so run ids of experiments
        without an ``availability`` block are those of earlier versions. The stage
        is not hashed: a run is the same run whichever stage asks for it; nor is
        a user problem's ``root`` (the config file's folder).
        """
        d = self.record()
        d.pop("run_id")
        d.pop("stage", None)
        d["problem"].pop("root", None)  # where the config lies is not a setting
        if d.get("availability") is None:
            d.pop("availability", None)
        return d

    def record(self) -> dict[str, Any]:
        """Return every field as plain data, ``hyper`` for ``params`` (summaries);
        ``stage`` only for a run of a tuning protocol."""
        stage = {} if self.stage is None else {"stage": self.stage}
        return {
            "run_id": self.run_id,
            "method": self.method,
            "policy": self.policy,
            "hyper": self.hyper,
            "seed": self.seed,
            "sweep": copy.deepcopy(self.sweep),
            "problem": copy.deepcopy(self.problem),
            "timing": copy.deepcopy(self.timing),
            "stop": copy.deepcopy(self.stop),
            "eval_every": self.eval_every,
            "record_arrivals": self.record_arrivals,
            "availability": copy.deepcopy(self.availability),
            **stage,
        }


#: Run-id tags of the relative coordinates of a grid point.
RELATIVE_TAGS = ((EFFECTIVE_STEP, "e"), (NOISE_QUANTILE, "q"), (CLIP_SCALE, "x"))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def make_run_id(settings: dict[str, Any]) -> str:
    """Return ``<method>-<sweep>-<hyper>-s<seed>-<hash8>`` for a run's settings.

    The hyper part lists the policy's tagged grid axes (``g0.5-c1``), then the
    relative coordinates a grid point has (``e0.01-q0.9``). The hash is
    SHA-256 of the settings as canonical JSON, so the id changes whenever anything
    that affects the run changes, and never otherwise.
    """
    canonical = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    parts = [settings["method"]]
    parts += [f"{k.split('.')[-1]}{_fmt(v)}" for k, v in settings["sweep"].items()]
    hyper = settings["hyper"]
    parts += [
        f"{tag}{_fmt(hyper[k])}"
        for k, tag in lookup(settings["policy"]).tags
        if hyper.get(k) is not None
    ]
    parts += [f"{tag}{_fmt(hyper[k])}" for k, tag in RELATIVE_TAGS if k in hyper]
    parts.append(f"s{settings['seed']}")
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", "-".join(str(p) for p in parts))
    return f"{slug}-{digest}"


def sweep_configs(
    config: ExperimentConfig,
) -> list[tuple[dict[str, Any], ExperimentConfig]]:
    """Return (sweep point, the config at that point) for every sweep point.

    Raises:
        ConfigError: If a sweep point makes the config invalid.
    """
    return [
        (point, config.at(point) if point else config)
        for point in config.sweep_points()
    ]


def method_grid(cfg: ExperimentConfig, name: str) -> list[GridPoint]:
    """Return the coarse grid of a method at one sweep point's config, a
    ``noise_quantile`` axis resolved on that point's problem."""
    method = cfg.methods[name]
    rel = method.relative
    if rel is None or rel.noise_quantile is None:
        return method.grid_points()
    problem = cfg.problem.model_dump(mode="json", exclude_none=True)
    return method.grid_points(noise_scale(problem, rel.num_samples))


def make_specs(
    cfg: ExperimentConfig,
    point: dict[str, Any],
    name: str,
    points: list[GridPoint],
    seeds: list[int],
    stage: str | None = None,
) -> list[RunSpec]:
    """Return the runs of grid points × seeds of one method at one sweep point."""
    problem = cfg.problem.model_dump(mode="json", exclude_none=True)
    timing = cfg.timing.model_dump(mode="json", exclude_none=True)
    stop = cfg.stop.model_dump(mode="json", exclude_none=True)
    availability = (
        None
        if cfg.availability is None
        else cfg.availability.model_dump(mode="json", exclude_none=True)
    )
    method = cfg.methods[name]
    specs = []
    for gp in points:
        for seed in seeds:
            spec = RunSpec(
                run_id="",
                method=name,
                policy=method.policy,
                params=gp.params,
                seed=seed,
                sweep=dict(point),
                problem=problem,
                timing=timing,
                stop=stop,
                eval_every=cfg.eval_every,
                record_arrivals=cfg.record_arrivals,
                availability=availability,
                extra_hyper=dict(gp.extra),
                stage=stage,
            )
            specs.append(replace(spec, run_id=make_run_id(spec.settings())))
    return specs


def check_unique(specs: list[RunSpec]) -> list[RunSpec]:
    """Return ``specs``, or raise if two runs have identical settings.

    Raises:
        ConfigError: On a duplicate grid.
    """
    ids = [s.run_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ConfigError(
            "config error: two runs have identical settings (duplicate grid)"
        )
    return specs


def expand(config: ExperimentConfig) -> list[RunSpec]:
    """Return the runs of the first stage: sweep point × method × grid point × seed.

    Without a ``protocol`` these are all the runs of the experiment (``seeds``);
    with one, the coarse grid on the tuning seeds (stage ``tune``; the later stages
    depend on its results, see :mod:`clipasync.experiments.protocol`).

    Raises:
        ConfigError: If a sweep point makes the config invalid.
    """
    stage = TUNE if config.protocol is not None else None
    specs: list[RunSpec] = []
    for point, cfg in sweep_configs(config):
        for name in cfg.methods:
            specs += make_specs(
                cfg, point, name, method_grid(cfg, name), cfg.first_stage_seeds, stage
            )
    return check_unique(specs)
