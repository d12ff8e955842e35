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
from dataclasses import dataclass, replace
from typing import Any

from clipasync.errors import ConfigError
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

    @property
    def hyper(self) -> dict[str, Any]:
        """The grid point as plain data (the record of run settings and summaries)."""
        return lookup(self.policy).to_hyper(self.params)

    def settings(self) -> dict[str, Any]:
        """Return every field but ``run_id`` as plain data (what the id's hash covers).

        ``availability`` is left out when ``None``, so run ids of experiments
        without an ``availability`` block are those of earlier versions.
        """
        d = self.record()
        d.pop("run_id")
        if d.get("availability") is None:
            d.pop("availability", None)
        return d

    def record(self) -> dict[str, Any]:
        """Return every field as plain data, ``hyper`` for ``params`` (summaries)."""
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
        }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def make_run_id(settings: dict[str, Any]) -> str:
    """Return ``<method>-<sweep>-<hyper>-s<seed>-<hash8>`` for a run's settings.

    The hyper part lists the policy's tagged grid axes (``g0.5-c1``). The hash is
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
    parts.append(f"s{settings['seed']}")
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", "-".join(str(p) for p in parts))
    return f"{slug}-{digest}"


def expand(config: ExperimentConfig) -> list[RunSpec]:
    """Return every run of the experiment: sweep point × method × grid point × seed.

    Raises:
        ConfigError: If a sweep point makes the config invalid.
    """
    specs: list[RunSpec] = []
    for point in config.sweep_points():
        cfg = config.at(point) if point else config
        problem = cfg.problem.model_dump(mode="json", exclude_none=True)
        timing = cfg.timing.model_dump(mode="json", exclude_none=True)
        stop = cfg.stop.model_dump(mode="json", exclude_none=True)
        availability = (
            None
            if cfg.availability is None
            else cfg.availability.model_dump(mode="json", exclude_none=True)
        )
        for name, method in cfg.methods.items():
            for params in method.points():
                for seed in cfg.seeds:
                    spec = RunSpec(
                        run_id="",
                        method=name,
                        policy=method.policy,
                        params=params,
                        seed=seed,
                        sweep=dict(point),
                        problem=problem,
                        timing=timing,
                        stop=stop,
                        eval_every=cfg.eval_every,
                        record_arrivals=cfg.record_arrivals,
                        availability=availability,
                    )
                    specs.append(replace(spec, run_id=make_run_id(spec.settings())))
    ids = [s.run_id for s in specs]
    if len(set(ids)) != len(ids):
        raise ConfigError(
            "config error: two runs have identical settings (duplicate grid)"
        )
    return specs
