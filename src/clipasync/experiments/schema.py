"""An experiment file as a validated model (:class:`ExperimentConfig`)::

    name: stragglers
    seeds: [0, 1, 2]        # without a protocol: select and score on these
    protocol: {tuning_seeds: [0, 1, 2], eval_seeds: {first: 1000, count: 20}}
    problem: {name: least_squares, dim: 100, noise: {kind: sub_weibull, theta: 2}}
    timing: {kind: two_speed, num_fast: 8, num_slow: 8, slow_time: 4}
    sweep: {timing.slow_time: [1, 2, 4, 8, 16, 32]}
    methods:
      clipped: {policy: async_sgd, stepsize: {base: 2, min_exp: -6, max_exp: -3},
                max_norm: [1, 2]}
      ringmaster: {policy: ringmaster, stepsize: [0.1, 0.05], max_delay: [16, 32]}
    stop: {max_time: 500, target: {metric: loss, value: 0.05}}

The blocks are :class:`~clipasync.experiments.sections.ProblemConfig`,
:class:`~clipasync.experiments.timing_schema.TimingConfig`,
:class:`~clipasync.experiments.methods.MethodConfig` (one per method, its fields
those of the registered policy), :class:`~clipasync.experiments.sections.StopConfig`
and the optional ``availability``, ``diagnostics``, ``protocol`` (tuning and
evaluation seeds, :class:`~clipasync.experiments.sections.ProtocolConfig`; without
it every run uses ``seeds``, which then select and score alike) and
``paper_reference`` (the paper's reported speedups of the reference method, shown
next to the measured ones). :func:`validate_config` turns pydantic's report into a
:class:`~clipasync.errors.ConfigError` of one line naming the field.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from clipasync.errors import ConfigError
from clipasync.experiments.fields import PositiveFloat, Strict, as_list, nonempty
from clipasync.experiments.limits import check_at_most, check_run_budget
from clipasync.experiments.messages import one_line
from clipasync.experiments.methods import MethodConfig
from clipasync.experiments.sections import (
    AvailabilityConfig,
    DiagnosticsConfig,
    OutputsConfig,
    ProblemConfig,
    ProtocolConfig,
    StopConfig,
)
from clipasync.experiments.timing_schema import TimingConfig, timing_workers


class ExperimentConfig(Strict):
    """A whole experiment file (see the module docstring)."""

    name: Annotated[
        str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    ]
    description: str = ""
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0])
    problem: ProblemConfig
    timing: TimingConfig
    sweep: dict[str, list[Any]] | None = None
    methods: dict[str, MethodConfig]
    stop: StopConfig
    eval_every: PositiveFloat | None = None
    reference: str | None = None
    workers: Literal["auto"] | int = "auto"
    #: Run the configurations that share an event sequence side by side
    #: (:mod:`clipasync.experiments.batched`); false: one by one.
    batch_grid: bool = True
    record_arrivals: bool = True
    profile: str | None = None
    diagnostics: DiagnosticsConfig | None = None
    paper_reference: dict[str, dict[str, PositiveFloat]] | None = None
    availability: AvailabilityConfig | None = None
    protocol: ProtocolConfig | None = None
    outputs: OutputsConfig | None = None

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            check_at_most("workers", 1 if v == "auto" else v, "processes", "processes")
            return v
        raise ValueError(f"must be 'auto' or an integer >= 1 (got {v!r})")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds_list(cls, v: Any) -> Any:
        return as_list(v)

    @field_validator("seeds")
    @classmethod
    def _seeds_nonempty(cls, v: list[int]) -> list[int]:
        nonempty(v)
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct (got {v})")
        return v

    @field_validator("methods")
    @classmethod
    def _methods_nonempty(cls, v: dict[str, MethodConfig]) -> dict[str, MethodConfig]:
        if not v:
            raise ValueError("empty: name at least one method")
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", name):
                raise ValueError(
                    f"method name {name[:70]!r} may use only letters, digits, _ - "
                    "(at most 64)"
                )
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep_nonempty(
        cls, v: dict[str, list[Any]] | None
    ) -> dict[str, list[Any]] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("empty: give a key and its values, or leave sweep out")
        for key, values in v.items():
            if not values:
                raise ValueError(f"sweep.{key}: empty grid: give at least one value")
            if key.split(".")[0] in ("sweep", "seeds", "name", "workers"):
                raise ValueError(f"sweep.{key}: this key cannot be swept")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> ExperimentConfig:
        if self.reference is not None and self.reference not in self.methods:
            raise ValueError(
                f"reference: unknown method {self.reference!r}; choose one of: "
                f"{', '.join(self.methods)}"
            )
        tail = self.diagnostics.tail_index if self.diagnostics else None
        if tail is not None and isinstance(tail.methods, list):
            for m in tail.methods:
                if m not in self.methods:
                    raise ValueError(
                        f"diagnostics.tail_index.methods: unknown method {m!r}; "
                        f"choose among: {', '.join(self.methods)}"
                    )
        if self.stop.target is not None and self.eval_every is None:
            raise ValueError("eval_every: required when stop.target is set")
        self._protocol_checks()
        self._federated_checks()
        check_sizes(self)
        for point in self.sweep_points():
            if not point:
                continue
            try:
                self.at(point)
            except ConfigError as exc:
                shown = ", ".join(f"{k}={v}" for k, v in point.items())
                raise ValueError(f"sweep: at {shown}: {exc}") from None
        return self

    def _protocol_checks(self) -> None:
        """A protocol scores the time to a target; equal budgets when asked."""
        if self.protocol is None:
            return
        if self.stop.target is None:
            raise ValueError(
                "protocol: needs stop.target (runs are selected and scored by the "
                "time, updates or gradients to the target)"
            )
        if self.protocol.equal_budget:
            sizes = {name: m.grid_size() for name, m in self.methods.items()}
            if len(set(sizes.values())) > 1:
                shown = ", ".join(f"{n}: {k}" for n, k in sizes.items())
                raise ValueError(
                    "protocol.equal_budget: methods have unequal numbers of coarse "
                    f"grid points ({shown}); give each the same number or set "
                    "equal_budget: false"
                )

    def _federated_checks(self) -> None:
        """Partition size vs number of workers; open system vs synchronous rules."""
        partition = (self.problem.model_extra or {}).get("partition")
        if isinstance(partition, dict) and "num_workers" in partition:
            n = timing_workers(self.timing)
            if n is not None and partition["num_workers"] != n:
                raise ValueError(
                    f"problem.partition.num_workers: {partition['num_workers']} "
                    f"shards but the timing model has {n} workers"
                )
        avail = self.availability
        if avail is not None and avail.open_system is not None:
            for name, m in self.methods.items():
                if m.entry.needs_all_workers:
                    raise ValueError(
                        f"availability.open_system: policy {m.policy!r} (method "
                        f"{name!r}) needs every worker busy; use an asynchronous "
                        "or federated policy"
                    )

    # -- derived views ------------------------------------------------------

    @property
    def first_stage_seeds(self) -> list[int]:
        """The seeds of the first stage: ``protocol.tuning_seeds``, else ``seeds``."""
        return list(self.protocol.tuning_seeds if self.protocol else self.seeds)

    @property
    def reference_method(self) -> str | None:
        """The method speedups are measured against: ``reference``, else the first
        method with a ``max_norm``, else the first method."""
        if self.reference is not None:
            return self.reference
        for name, m in self.methods.items():
            if m.clips:
                return name
        return next(iter(self.methods), None)

    def sweep_points(self) -> list[dict[str, Any]]:
        """Return the outer sweep's points (``[{}]`` when there is no sweep)."""
        if not self.sweep:
            return [{}]
        keys = list(self.sweep)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*self.sweep.values())
        ]

    def at(self, point: dict[str, Any]) -> ExperimentConfig:
        """Return this config with the dotted keys of a sweep point set (no sweep).

        Raises:
            ConfigError: If the point makes the config invalid.
        """
        raw = self.model_dump(exclude={"sweep"}, exclude_unset=True)
        for key, value in point.items():
            set_dotted(raw, key, value)
        return validate_config(raw)

    def resolved(self) -> dict[str, Any]:
        """Return the fully expanded config (grids as lists, defaults filled in)."""
        out = self.model_dump(mode="json", exclude_none=True)
        out["reference"] = self.reference_method
        out["methods"] = {
            name: {
                **m.model_dump(mode="json", exclude_none=True),
                "grid_size": m.grid_size(),
            }
            for name, m in self.methods.items()
        }
        return out


def check_sizes(config: ExperimentConfig) -> None:
    """Refuse an experiment whose grid, or one of whose runs, is effectively endless
    (:mod:`clipasync.experiments.limits`); at a sweep point via :meth:`at`."""
    points = math.prod(len(v) for v in (config.sweep or {}).values())
    grid = sum(m.grid_size() for m in config.methods.values())
    seeds = len(config.first_stage_seeds) + (
        len(config.protocol.eval_seeds) if config.protocol else 0
    )
    check_at_most("experiment", points * grid * seeds, "runs", "runs")
    if not config.sweep:
        check_run_budget(
            config.stop.model_dump(exclude_none=True),
            config.timing.model_dump(exclude_none=True),
            config.eval_every,
        )


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw[a][b][c] = value`` for ``key = "a.b.c"``, creating dicts.

    Raises:
        ConfigError: If a part of the path is not a mapping.
    """
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"config error at {key}: bad key (use dotted names a.b.c)")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"config error at {key}: {where} is not a mapping")
        node = child
    node[parts[-1]] = value


def validate_config(raw: Any) -> ExperimentConfig:
    """Validate a parsed YAML document.

    Raises:
        ConfigError: One line naming the first invalid field.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config error: the file must be a mapping, got {type(raw).__name__}"
        )
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(one_line(exc, ExperimentConfig)) from None
