"""The smaller blocks of an experiment file: problem (and its noise), stop rule,
availability (client dropout, open systems) and diagnostics.

``problem: {name: least_squares, dim: 100, noise: {kind: sub_weibull, theta: 2}}``
names a problem of :data:`clipasync.problems.PROBLEMS` (other keys are its factory's
keyword arguments; ``partition: {kind: dirichlet | shards | natural, ...}`` splits it
into client shards) and a noise of :data:`clipasync.problems.noise.NOISES`;
``stop: {max_time: 500, target: {metric: loss, value: 0.05}}`` ends every run;
``availability: {dropout: {kind: bernoulli, p: 0.05}}`` or ``{open_system: {rate:
8}}`` makes clients vanish or arrive; ``diagnostics: {tail_index: {num_samples:
500, at: [init, final]}}`` measures the gradient noise's tail after the grid;
``protocol: {tuning_seeds: [0, 1, 2], eval_seeds: {first: 1000, count: 20}}`` selects
each method's configuration on tuning seeds and scores it on fresh evaluation seeds
(:class:`ProtocolConfig`).
"""

from __future__ import annotations

import importlib.util
import inspect
import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clipasync.engine import metric_direction
from clipasync.errors import ConfigError
from clipasync.experiments.fields import (
    PositiveFloat,
    PositiveInt,
    Strict,
    as_list,
    nonempty,
)
from clipasync.experiments.limits import check_at_most
from clipasync.problems import PROBLEMS
from clipasync.problems.noise import NOISES
from clipasync.sim.availability import make_dropout


def check_plain(where: str, values: Any) -> None:
    """Refuse what a factory keyword can never mean: a non-finite number (``.nan``
    would become a random seed) and a ``seed`` that is not an integer >= 0.

    Raises:
        ValueError: Naming the dotted key.
    """
    items = values.items() if isinstance(values, dict) else enumerate(values)
    for key, v in items:
        at = f"{where}.{key}"
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{at}: must be a finite number (got {v})")
        if (str(key) == "seed" or str(key).endswith("_seed")) and (
            isinstance(v, bool) or not isinstance(v, int) or v < 0
        ):
            raise ValueError(f"{at}: must be an integer >= 0 (got {v!r})")
        if isinstance(v, dict | list):
            check_plain(at, v)


def problem_names() -> list[str]:
    """Return the registered problem names."""
    return sorted(PROBLEMS)


def noise_kinds() -> list[str]:
    """Return the registered noise kinds."""
    return sorted(NOISES)


class NoiseConfig(BaseModel):
    """Synthetic gradient noise added to the problem's oracle.

    ``kind`` names a noise of :mod:`clipasync.problems.noise`; other keys are its
    parameters (e.g. ``theta``, ``scale`` for ``sub_weibull``).
    """

    model_config = ConfigDict(extra="allow")

    kind: Annotated[str, Field(strict=True)]

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        known = noise_kinds()
        if kind not in known:
            raise ValueError(
                f"unknown noise kind {kind!r}; choose one of: {', '.join(known)}"
            )
        return kind

    @model_validator(mode="after")
    def _plain_values(self) -> NoiseConfig:
        check_plain("problem.noise", self.model_extra or {})
        return self


class ProblemConfig(BaseModel):
    """A problem of the registry; extra keys are the factory's keyword arguments."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(strict=True)]
    noise: NoiseConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _factory_name(cls, data: Any) -> Any:
        # ``{factory: "mod:make", args: {...}}`` needs no name (Hydra's _target_).
        if isinstance(data, dict) and "factory" in data and "name" not in data:
            return {"name": "factory", **data}
        return data

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        known = problem_names()
        if name not in known:
            raise ValueError(
                f"unknown problem {name!r}; choose one of: {', '.join(known)}"
            )
        return name

    @model_validator(mode="after")
    def _plain_values(self) -> ProblemConfig:
        extra = self.model_extra or {}
        check_plain("problem", extra)
        params = inspect.signature(PROBLEMS[self.name]).parameters
        for key, value in extra.items():
            p = params.get(key)
            if value is None and p is not None and p.default not in (None, p.empty):
                raise ValueError(
                    f"problem.{key}: null is not a value (the default is "
                    f"{p.default!r}); give one or leave the key out"
                )
        return self

    def kwargs(self) -> dict[str, Any]:
        """Return the factory's keyword arguments (every key but name and noise)."""
        return dict(self.model_extra or {})


class OutputsConfig(Strict):
    """Optional outputs of a run: ``tensorboard: true`` writes live TensorBoard
    scalars to ``<out>/tensorboard/<run_id>/``
    (:mod:`clipasync.experiments.tensorboard`; simulator runs)."""

    tensorboard: bool = False

    @field_validator("tensorboard")
    @classmethod
    def _installed(cls, on: bool) -> bool:
        if on and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "needs the tensorboard package: pip install 'clipasync[tensorboard]'"
            )
        return on


class OpenSystemConfig(Strict):
    """An open system: jobs start at rate λ (``rate``) per time unit."""

    rate: PositiveFloat


class AvailabilityConfig(Strict):
    """Clients that vanish mid-job, or an open system (sim.availability).

    ``dropout: {kind: bernoulli, p: 0.05}`` (or ``{kind: periodic, period,
    off_time, phases}``) loses jobs; with the default closed system the lost job is
    retried on the same client (:class:`~clipasync.sim.UnreliablePool`).
    ``open_system: {rate: λ}`` starts jobs at Poisson(λ) times on uniformly drawn
    clients instead of keeping every worker busy
    (:class:`~clipasync.sim.OpenSystemPool`; lost jobs are not retried).
    """

    dropout: dict[str, Any] | None = None
    open_system: OpenSystemConfig | None = None

    @field_validator("dropout")
    @classmethod
    def _dropout_spec(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            make_dropout(v)  # a ConfigError (a ValueError) becomes one line
        return v


class TargetConfig(Strict):
    """Stop once ``metric`` reaches ``value`` (≤ for losses, ≥ for accuracies) on
    ``confirm`` consecutive evaluations (default 1: the first evaluation that does;
    left out of run settings while unset, so run ids stay those of earlier
    versions). ``direction: minimise | maximise`` is required for a metric whose
    direction is not known (:func:`clipasync.engine.metric_direction`) and, like
    ``confirm``, left out of run settings while unset."""

    metric: str
    value: float
    confirm: PositiveInt | None = None
    direction: Literal["minimise", "maximise"] | None = None

    @model_validator(mode="after")
    def _known_direction(self) -> TargetConfig:
        try:
            metric_direction(self.metric, self.direction)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self


class StopConfig(Strict):
    """Budgets and target of every run (at least one budget)."""

    max_time: PositiveFloat | None = None
    max_updates: PositiveInt | None = None
    max_arrivals: PositiveInt | None = None
    target: TargetConfig | None = None
    diverge_factor: Annotated[float, Field(gt=1)] = 1e6

    @model_validator(mode="after")
    def _some_budget(self) -> StopConfig:
        if (
            self.max_time is None
            and self.max_updates is None
            and self.max_arrivals is None
        ):
            raise ValueError(
                "stop: needs at least one of max_time, max_updates, max_arrivals"
            )
        return self


class TailIndexConfig(Strict):
    """Sub-Weibull tail index θ of the gradient noise (Vladimirova et al. 2020).

    Measured once per distinct problem at the initial point (``init``) and, for
    ``final``, at the last iterate of the best run (median seed) of each (sweep
    point, method) in ``methods`` (``reference``: the reference method only;
    ``all``; or a list of names). Each measurement draws ``num_samples`` stochastic
    gradients and regresses the ``k`` largest noise norms (default top 1 %, at
    least 10); cost ≈ ``num_samples`` oracle calls.
    """

    num_samples: Annotated[int, Field(ge=20)] = 500
    k: Annotated[int, Field(ge=2)] | None = None
    at: list[Literal["init", "final"]] = Field(
        default_factory=lambda: list[Literal["init", "final"]](["init", "final"])
    )
    methods: Literal["reference", "all"] | list[str] = "reference"
    seed: Annotated[int, Field(ge=0)] = 0

    @field_validator("at")
    @classmethod
    def _at_nonempty(cls, v: list[str]) -> list[str]:
        nonempty(v)
        return v


class DiagnosticsConfig(Strict):
    """Diagnostics computed after the grid has run (see :class:`TailIndexConfig`)."""

    tail_index: TailIndexConfig | None = None


#: The default refinement factor: one √2 step either side of the coarse best.
SQRT2 = math.sqrt(2.0)

Seed = Annotated[int, Field(ge=0)]


def seed_list(value: Any) -> Any:
    """A seed list from a list, one seed, or a range ``{first: 1000, count: 20}``.

    Raises:
        ValueError: On a malformed range.
    """
    if not isinstance(value, dict):
        return as_list(value)
    unknown = set(value) - {"first", "count"}
    if unknown:
        raise ValueError(
            f"unknown key {sorted(unknown)[0]!r} in a seed range; allowed: first, count"
        )
    first, count = value.get("first", 0), value.get("count")
    if count is None:
        raise ValueError("a seed range {first, count} needs count")
    for name, v, low in (("first", first, 0), ("count", count, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(
                f"seed range {name} must be an integer >= {low} (got {v!r})"
            )
    check_at_most("seed range count", count, "runs", "seeds")
    return list(range(first, first + count))


def _distinct(v: list[int]) -> list[int]:
    nonempty(v)
    if len(set(v)) != len(v):
        raise ValueError(f"seeds must be distinct (got {v})")
    return v


class RefineConfig(Strict):
    """One refinement pass: each refinable axis of a method's coarse best is tried
    at best / ``factor`` and best × ``factor`` (the other axes at their best)."""

    factor: Annotated[float, Field(gt=1)] = SQRT2


class ProtocolConfig(Strict):
    """The tuning protocol: select on tuning seeds, score on fresh evaluation seeds.

    Stages: the coarse grid × ``tuning_seeds`` (``tune``); one refinement around
    each method's best (``refine``, :class:`RefineConfig`; ``refine: null``: none);
    the pick of each (sweep point, method), the smallest median tuning score
    (``select_by``: time, updates or gradients to the robust hit, a run that never
    confirms the target counting as +∞), × ``eval_seeds`` (``eval``). With
    ``equal_budget`` every method must have as many coarse grid points as the others.
    ``confidence`` is the level of the report's intervals.
    """

    NULLABLE: ClassVar[frozenset[str]] = frozenset({"refine"})

    tuning_seeds: list[Seed]
    eval_seeds: list[Seed]
    refine: RefineConfig | None = Field(default_factory=RefineConfig)
    select_by: Literal["time", "updates", "gradients"] = "time"
    equal_budget: bool = True
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.9

    @field_validator("tuning_seeds", "eval_seeds", mode="before")
    @classmethod
    def _seed_lists(cls, v: Any) -> Any:
        return seed_list(v)

    @field_validator("tuning_seeds", "eval_seeds")
    @classmethod
    def _seeds_distinct(cls, v: list[int]) -> list[int]:
        return _distinct(v)

    @model_validator(mode="after")
    def _disjoint(self) -> ProtocolConfig:
        both = sorted(set(self.tuning_seeds) & set(self.eval_seeds))
        if both:
            shown = ", ".join(map(str, both[:5])) + (", ..." if len(both) > 5 else "")
            raise ValueError(
                f"protocol.eval_seeds: must be disjoint from tuning_seeds (both hold "
                f"{shown})"
            )
        return self
