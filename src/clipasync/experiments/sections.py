"""The smaller blocks of an experiment file: problem (and its noise), stop rule,
availability (client dropout, open systems) and diagnostics.

``problem: {name: least_squares, dim: 100, noise: {kind: sub_weibull, theta: 2}}``
names a problem of :data:`clipasync.problems.PROBLEMS` (other keys are its factory's
keyword arguments; ``partition: {kind: dirichlet | shards | natural, ...}`` splits it
into client shards) and a noise of :data:`clipasync.problems.noise.NOISES`;
``stop: {max_time: 500, target: {metric: loss, value: 0.05}}`` ends every run;
``availability: {dropout: {kind: bernoulli, p: 0.05}}`` or ``{open_system: {rate:
8}}`` makes clients vanish or arrive; ``diagnostics: {tail_index: {num_samples:
500, at: [init, final]}}`` measures the gradient noise's tail after the grid.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clipasync.experiments.fields import PositiveFloat, PositiveInt, Strict, nonempty
from clipasync.problems import PROBLEMS
from clipasync.problems.noise import NOISES
from clipasync.sim.availability import make_dropout


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

    kind: str

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        known = noise_kinds()
        if kind not in known:
            raise ValueError(
                f"unknown noise kind {kind!r}; choose one of: {', '.join(known)}"
            )
        return kind


class ProblemConfig(BaseModel):
    """A problem of the registry; extra keys are the factory's keyword arguments."""

    model_config = ConfigDict(extra="allow")

    name: str
    noise: NoiseConfig | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        known = problem_names()
        if name not in known:
            raise ValueError(
                f"unknown problem {name!r}; choose one of: {', '.join(known)}"
            )
        return name

    def kwargs(self) -> dict[str, Any]:
        """Return the factory's keyword arguments (every key but name and noise)."""
        return dict(self.model_extra or {})


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
    """Stop once ``metric`` reaches ``value`` (≤ for losses, ≥ for accuracies)."""

    metric: str
    value: float


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
