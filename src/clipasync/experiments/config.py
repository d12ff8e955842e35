"""YAML experiment files: validated models, grids, overrides and one-line errors.

An experiment names a problem, a compute-time model, methods with hyperparameter grids,
seeds, a stop rule and an optional outer sweep (DESIGN.md §5)::

    name: stragglers
    seeds: [0, 1, 2]
    problem: {name: least_squares, dim: 100, noise: {kind: sub_weibull, theta: 2}}
    timing: {kind: two_speed, num_fast: 8, num_slow: 8, slow_time: 4}
    sweep: {timing.slow_time: [1, 2, 4, 8, 16, 32]}
    methods:
      clipped: {policy: async_sgd, stepsize: {base: 2, min_exp: -6, max_exp: -3},
                max_norm: [1, 2]}
      ringmaster: {policy: ringmaster, stepsize: [0.1, 0.05], max_delay: [16, 32]}
    stop: {max_time: 500, target: {metric: loss, value: 0.05}}

Every list-valued hyperparameter of a method is a grid axis (Cartesian product).

Profiles: a file may hold ``profiles: {quick: {dotted.key: value, ...}, full: {...}}``
and ``default_profile: quick``. ``load_config(path, profile="full")`` (the CLI's
``--profile full``) applies the named profile's overrides to the file, then the
``--set`` overrides; without ``--profile`` the ``default_profile`` is applied, and a
file without one runs as written. A profile key names a dotted path
(``problem.subset``) or a whole top-level section (``sweep: {timing.slow_time: [4]}``:
sweep keys contain dots, so replace the sweep as a whole).

Optional blocks read by the runner and the report: ``diagnostics: {tail_index:
{num_samples: 500, at: [init, final]}}`` (sub-Weibull tail index of the gradient noise,
see :class:`TailIndexConfig`) and ``paper_reference: {D=4: {vanilla: 1.8}}`` (the
paper's reported speedups of the reference method, shown next to the measured ones).
Federated runs: policies ``fedbuff`` and ``fedasync`` (see :class:`MethodConfig`),
``problem.partition: {kind: dirichlet | shards | natural, ...}`` (client shards, see
:func:`clipasync.problems.partition.partition_from_spec`) and ``availability:
{dropout: {kind: bernoulli, p: 0.05}}`` or ``{open_system: {rate: 8}}`` (see
:class:`AvailabilityConfig`); ``experiments/federated.yaml`` uses them.
Validation is done by pydantic; :func:`load_config` turns its ``ValidationError``
into a :class:`~clipasync.errors.ConfigError` with one line that names the field and
what is allowed, e.g. ``config error at methods.clipped.max_norm: must be > 0
(got -1)``.
"""

from __future__ import annotations

import itertools
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from clipasync.errors import ConfigError

# ---------------------------------------------------------------------------
# Registries of names (the CLI's `list` and every error message read these).

#: Server policies a method may name, with the fields each accepts beyond
#: ``policy``/``stepsize``/``max_norm``/``delay_adaptive``.
METHOD_POLICIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "async_sgd": (
        "asynchronous SGD: vanilla, clipped (max_norm), delay-adaptive, "
        "Alg. 2 (assign: random)",
        ("assign",),
    ),
    "ringmaster": (
        "Ringmaster ASGD: discard gradients with delay >= max_delay (R)",
        ("max_delay", "cancel_stale"),
    ),
    "rennala": (
        "Rennala SGD: step with the mean of batch_size (B) fresh gradients",
        ("batch_size",),
    ),
    "minibatch": ("synchronous minibatch SGD: one gradient per worker", ()),
    "fedbuff": (
        "FedBuff: buffer buffer_size (K) client deltas, server stepsize (eta_g), "
        "optional server_momentum; clients run local_steps at local_stepsize, "
        "deltas clipped to client_max_norm",
        (
            "server_momentum",
            "buffer_size",
            "staleness",
            "max_staleness",
            "assign",
            "local_steps",
            "local_stepsize",
            "client_max_norm",
        ),
    ),
    "fedasync": (
        "FedAsync: mix client models with weight mixing (alpha) x staleness; "
        "no stepsize/max_norm (clients: local_steps, local_stepsize, "
        "client_max_norm)",
        (
            "mixing",
            "staleness",
            "assign",
            "local_steps",
            "local_stepsize",
            "client_max_norm",
        ),
    ),
}

_COMMON_METHOD_FIELDS = (
    "policy",
    "stepsize",
    "max_norm",
    "delay_adaptive",
    "adaptive_clip",
)
_REQUIRED_METHOD_FIELDS = {
    "ringmaster": ("max_delay",),
    "rennala": ("batch_size",),
    "fedbuff": ("buffer_size", "local_stepsize"),
    "fedasync": ("mixing", "local_stepsize"),
}
#: Common fields a policy does not take (FedAsync mixes models: no stepsize).
_EXCLUDED_METHOD_FIELDS = {
    "fedbuff": ("delay_adaptive",),
    "fedasync": ("stepsize", "max_norm", "delay_adaptive", "adaptive_clip"),
}
#: Federated policies: their jobs are local training (``local_sgd_task``).
FEDERATED_POLICIES = ("fedbuff", "fedasync")

#: Timing kinds: description, required fields, optional fields.
TIMING_KINDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "two_speed": (
        "num_fast workers at fast_time, num_slow at slow_time (D)",
        (),
        ("num_fast", "num_slow", "slow_time", "fast_time"),
    ),
    "fixed": ("fixed per-worker times", ("times",), ()),
    "sqrt": ("tau_i = sqrt(i), i = 1..num_workers", ("num_workers",), ()),
    "exponential": ("exponential with a per-worker mean", (), ("mean", "num_workers")),
    "lognormal": (
        "log-normal with a per-worker mean and log-std sigma",
        (),
        ("mean", "num_workers", "sigma"),
    ),
    "pareto": (
        "Pareto (heavy tail) with index alpha > 1",
        (),
        ("mean", "num_workers", "alpha"),
    ),
    "slow_prob": (
        "mean, or mean * slowdown with probability p",
        (),
        ("mean", "num_workers", "p", "slowdown"),
    ),
    "trace": ("replay a CSV with columns worker,compute_time", ("path",), ("cycle",)),
}

MethodPolicy = Literal[
    "async_sgd", "ringmaster", "rennala", "minibatch", "fedbuff", "fedasync"
]
TimingKind = Literal[
    "two_speed",
    "fixed",
    "sqrt",
    "exponential",
    "lognormal",
    "pareto",
    "slow_prob",
    "trace",
]

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(ge=1)]

# ---------------------------------------------------------------------------
# Helpers for grid-valued fields.


def _as_list(value: Any) -> Any:
    """Scalar → one-element list; lists pass through; None stays None."""
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


def _powers(value: dict[str, Any]) -> list[float]:
    allowed = {"base", "min_exp", "max_exp"}
    unknown = set(value) - allowed
    if unknown:
        raise ValueError(
            f"unknown key {sorted(unknown)[0]!r} in a power grid; allowed: "
            "base, min_exp, max_exp"
        )
    missing = {"min_exp", "max_exp"} - set(value)
    if missing:
        raise ValueError(f"a power grid needs {sorted(missing)[0]}")
    base, lo, hi = value.get("base", 2), value["min_exp"], value["max_exp"]
    if not (isinstance(base, int | float) and base > 0):
        raise ValueError(f"power grid base must be > 0 (got {base!r})")
    if not (isinstance(lo, int) and isinstance(hi, int)):
        raise ValueError(f"min_exp and max_exp must be integers (got {lo!r}, {hi!r})")
    return [float(base) ** e for e in range(lo, hi + 1)]


def _nonempty(value: list[Any] | None) -> list[Any] | None:
    if value is not None and len(value) == 0:
        raise ValueError("empty grid: give at least one value")
    return value


# ---------------------------------------------------------------------------
# Models.


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NoiseConfig(BaseModel):
    """Synthetic gradient noise added to the problem's oracle.

    ``kind`` names a noise of :mod:`clipasync.problems.noise`; other keys are its parameters
    (e.g. ``theta``, ``scale`` for ``sub_weibull``).
    """

    model_config = ConfigDict(extra="allow")

    kind: str

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        known = noise_kinds()
        if known and kind not in known:
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
        if known and name not in known:
            raise ValueError(
                f"unknown problem {name!r}; choose one of: {', '.join(known)}"
            )
        return name

    def kwargs(self) -> dict[str, Any]:
        """Return the factory's keyword arguments (every key but name and noise)."""
        return dict(self.model_extra or {})


class TimingConfig(_Strict):
    """A compute-time model (see :data:`TIMING_KINDS` for the fields of each kind)."""

    kind: TimingKind
    num_fast: Annotated[int, Field(ge=0)] | None = None
    num_slow: Annotated[int, Field(ge=0)] | None = None
    slow_time: PositiveFloat | None = None
    fast_time: PositiveFloat | None = None
    times: list[PositiveFloat] | None = None
    num_workers: PositiveInt | None = None
    mean: PositiveFloat | list[PositiveFloat] | None = None
    sigma: Annotated[float, Field(ge=0)] | None = None
    alpha: Annotated[float, Field(gt=1)] | None = None
    p: Annotated[float, Field(ge=0, le=1)] | None = None
    slowdown: Annotated[float, Field(ge=1)] | None = None
    path: str | None = None
    cycle: bool | None = None

    @field_validator("times")
    @classmethod
    def _times_nonempty(cls, v: list[float] | None) -> list[float] | None:
        return _nonempty(v)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> TimingConfig:
        _, required, optional = TIMING_KINDS[self.kind]
        allowed = {"kind", *required, *optional}
        for name in sorted(self.model_fields_set):
            if name not in allowed:
                raise ValueError(
                    f"timing.{name}: not a field of timing kind {self.kind!r} "
                    f"(its fields: {', '.join(sorted(allowed - {'kind'}))})"
                )
        for name in required:
            if getattr(self, name) is None:
                raise ValueError(
                    f"timing.{name}: required for timing kind {self.kind!r}"
                )
        if (
            self.kind in ("exponential", "lognormal", "pareto", "slow_prob")
            and not isinstance(self.mean, list)
            and self.num_workers is None
        ):
            raise ValueError(
                f"timing.num_workers: required for timing kind {self.kind!r} "
                "unless mean is a list"
            )
        return self

    def params(self) -> dict[str, Any]:
        """Return the fields that were set (the model's parameters, without kind)."""
        return {
            k: getattr(self, k)
            for k in type(self).model_fields
            if k != "kind" and getattr(self, k) is not None
        }


class AdaptiveClipConfig(_Strict):
    """A max_norm learned online (:func:`clipasync.transforms.adaptive.adaptive_clip`).

    ``rule: window`` clips at the ``quantile`` of the last ``window`` pre-clip
    norms; ``rule: geometric`` uses the update of Andrew et al. (2021),
    c ← c·exp(−adapt_rate·(1{‖g‖ <= c} − quantile)).
    """

    rule: Literal["window", "geometric"] = "window"
    quantile: Annotated[float, Field(gt=0, lt=1)] = 0.9
    initial_max_norm: PositiveFloat = 1.0
    window: PositiveInt = 100
    warmup: PositiveInt | None = None
    adapt_rate: PositiveFloat = 0.2


class MethodConfig(_Strict):
    """One method of the comparison: a policy and its hyperparameter grid.

    ``stepsize`` (alias ``lr``) is a number, a list or a power grid
    ``{base: 2, min_exp: -9, max_exp: -1}``. ``max_norm``, ``max_delay`` and
    ``batch_size`` are numbers or lists; every list is a grid axis.

    Federated policies (jobs are ``local_steps`` of local SGD at
    ``local_stepsize`` on the client's shard, the delta clipped to
    ``client_max_norm``): ``fedbuff`` (``stepsize`` is the server stepsize η_g,
    ``max_norm`` clips the buffered pseudo-gradient, ``buffer_size`` is K) and
    ``fedasync`` (``mixing`` α, no ``stepsize``). ``buffer_size``,
    ``local_stepsize``, ``client_max_norm`` and ``mixing`` are grids;
    ``client_max_norm`` may list ``null`` (no client clipping). ``staleness`` is a
    :func:`~clipasync.policies.staleness.make_staleness` spec.
    """

    policy: MethodPolicy
    stepsize: list[PositiveFloat] = Field(
        default_factory=list, validation_alias=AliasChoices("stepsize", "lr")
    )
    max_norm: list[PositiveFloat] | None = None
    delay_adaptive: bool = False
    assign: Literal["same", "random"] = "same"
    max_delay: list[PositiveInt] | None = None
    cancel_stale: bool = False
    batch_size: list[PositiveInt] | None = None
    adaptive_clip: AdaptiveClipConfig | None = None
    server_momentum: Annotated[float, Field(ge=0, lt=1)] | None = None
    buffer_size: list[PositiveInt] | None = None
    staleness: str | dict[str, Any] | None = None
    max_staleness: Annotated[int, Field(ge=0)] | None = None
    local_steps: PositiveInt = 1
    local_stepsize: list[PositiveFloat] | None = None
    client_max_norm: list[PositiveFloat | None] | None = None
    mixing: list[Annotated[float, Field(gt=0, le=1)]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_stepsize_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "stepsize" in data and "lr" in data:
            raise ValueError("give stepsize or its alias lr, not both")
        return data

    @field_validator("stepsize", mode="before")
    @classmethod
    def _stepsize_grid(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return _powers(v)
        return _as_list(v)

    @field_validator("max_norm", "max_delay", "batch_size", mode="before")
    @classmethod
    def _to_list(cls, v: Any) -> Any:
        return _as_list(v)

    @field_validator(
        "buffer_size", "local_stepsize", "client_max_norm", "mixing", mode="before"
    )
    @classmethod
    def _fed_to_list(cls, v: Any) -> Any:
        # ``client_max_norm: null`` is "no clipping" (a one-point grid), not absent.
        return [None] if v is None else _as_list(v)

    @field_validator("stepsize", "max_norm", "max_delay", "batch_size")
    @classmethod
    def _grid_nonempty(cls, v: list[Any] | None) -> list[Any] | None:
        return _nonempty(v)

    @field_validator("buffer_size", "local_stepsize", "client_max_norm", "mixing")
    @classmethod
    def _fed_grid_nonempty(cls, v: list[Any] | None) -> list[Any] | None:
        return _nonempty(v)

    @field_validator("staleness")
    @classmethod
    def _staleness_spec(
        cls, v: str | dict[str, Any] | None
    ) -> str | dict[str, Any] | None:
        from clipasync.policies.staleness import make_staleness

        make_staleness(v)  # a ConfigError (a ValueError) becomes a one-line error
        return v

    @model_validator(mode="after")
    def _fields_of_policy(self) -> MethodConfig:
        allowed = {*_COMMON_METHOD_FIELDS, *METHOD_POLICIES[self.policy][1]}
        allowed -= set(_EXCLUDED_METHOD_FIELDS.get(self.policy, ()))
        for name in sorted(self.model_fields_set):
            if name not in allowed:
                raise ValueError(
                    f"{name}: not a field of policy {self.policy!r} "
                    f"(its fields: {', '.join(sorted(allowed))})"
                )
        if self.adaptive_clip is not None and self.max_norm is not None:
            raise ValueError(
                "adaptive_clip: give either max_norm or adaptive_clip (its "
                "initial_max_norm sets the starting level), not both"
            )
        for name in _REQUIRED_METHOD_FIELDS.get(self.policy, ()):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required for policy {self.policy!r}")
        if self.policy != "fedasync" and not self.stepsize:
            raise ValueError("stepsize: required field is missing")
        for name in ("buffer_size", "local_stepsize", "mixing"):
            if None in (getattr(self, name) or ()):
                raise ValueError(f"{name}: must be a number or a list of numbers")
        return self

    def grid(self) -> list[dict[str, Any]]:
        """Return every grid point: the Cartesian product of the list fields.

        Each point holds ``stepsize``, ``max_norm`` (``None``: no clipping),
        ``delay_adaptive`` and the policy's own fields (FedAsync: no ``stepsize``
        nor ``max_norm``).
        """
        if self.policy in FEDERATED_POLICIES:
            return self._federated_grid()
        axes: dict[str, list[Any]] = {
            "stepsize": self.stepsize,
            "max_norm": self.max_norm if self.max_norm is not None else [None],
        }
        if self.policy == "ringmaster":
            axes["max_delay"] = self.max_delay or []
        if self.policy == "rennala":
            axes["batch_size"] = self.batch_size or []
        fixed: dict[str, Any] = {"delay_adaptive": self.delay_adaptive}
        if self.adaptive_clip is not None:
            fixed["adaptive_clip"] = self.adaptive_clip.model_dump(exclude_none=True)
        if self.policy == "async_sgd":
            fixed["assign"] = self.assign
        if self.policy == "ringmaster":
            fixed["cancel_stale"] = self.cancel_stale
        names = list(axes)
        return [
            {**dict(zip(names, values, strict=True)), **fixed}
            for values in itertools.product(*axes.values())
        ]

    def _federated_grid(self) -> list[dict[str, Any]]:
        from clipasync.policies.staleness import make_staleness

        axes: dict[str, list[Any]] = {}
        fixed: dict[str, Any] = {"delay_adaptive": False}
        if self.policy == "fedbuff":
            axes["stepsize"] = self.stepsize
            axes["max_norm"] = self.max_norm if self.max_norm is not None else [None]
            axes["buffer_size"] = self.buffer_size or []
            if self.adaptive_clip is not None:
                fixed["adaptive_clip"] = self.adaptive_clip.model_dump(
                    exclude_none=True
                )
            fixed["server_momentum"] = self.server_momentum
            fixed["max_staleness"] = self.max_staleness
        else:
            axes["mixing"] = self.mixing or []
        axes["local_stepsize"] = self.local_stepsize or []
        axes["client_max_norm"] = self.client_max_norm or [None]
        fixed["local_steps"] = self.local_steps
        fixed["staleness"] = make_staleness(self.staleness).to_config()
        fixed["assign"] = self.assign
        names = list(axes)
        return [
            {**dict(zip(names, values, strict=True)), **fixed}
            for values in itertools.product(*axes.values())
        ]


class OpenSystemConfig(_Strict):
    """An open system: jobs start at rate λ (``rate``) per time unit."""

    rate: PositiveFloat


class AvailabilityConfig(_Strict):
    """Clients that vanish mid-job, or an open system (:mod:`clipasync.sim.availability`).

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
            from clipasync.sim.availability import make_dropout

            make_dropout(v)  # a ConfigError (a ValueError) becomes one line
        return v


def _timing_workers(timing: TimingConfig) -> int | None:
    """Number of workers a timing config defines (``None``: known only at run time)."""
    if timing.kind == "two_speed":
        num_fast = timing.num_fast if timing.num_fast is not None else 8
        return num_fast + (timing.num_slow if timing.num_slow is not None else 8)
    if timing.kind == "fixed":
        return len(timing.times or ())
    if isinstance(timing.mean, list):
        return len(timing.mean)
    return timing.num_workers


class TargetConfig(_Strict):
    """Stop once ``metric`` reaches ``value`` (≤ for losses, ≥ for accuracies)."""

    metric: str
    value: float


class StopConfig(_Strict):
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


class TailIndexConfig(_Strict):
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
        _nonempty(v)
        return v


class DiagnosticsConfig(_Strict):
    """Diagnostics computed after the grid has run (see :class:`TailIndexConfig`)."""

    tail_index: TailIndexConfig | None = None


class ExperimentConfig(_Strict):
    """A whole experiment file (see the module docstring)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
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
    record_arrivals: bool = True
    profile: str | None = None
    diagnostics: DiagnosticsConfig | None = None
    paper_reference: dict[str, dict[str, PositiveFloat]] | None = None
    availability: AvailabilityConfig | None = None

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"must be 'auto' or an integer >= 1 (got {v!r})")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds_list(cls, v: Any) -> Any:
        return _as_list(v)

    @field_validator("seeds")
    @classmethod
    def _seeds_nonempty(cls, v: list[int]) -> list[int]:
        _nonempty(v)
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct (got {v})")
        return v

    @field_validator("methods")
    @classmethod
    def _methods_nonempty(cls, v: dict[str, MethodConfig]) -> dict[str, MethodConfig]:
        if not v:
            raise ValueError("empty: name at least one method")
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
                raise ValueError(
                    f"method name {name!r} may use only letters, digits, _ -"
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
        self._federated_checks()
        for point in self.sweep_points():
            if not point:
                continue
            try:
                self.at(point)
            except ConfigError as exc:
                shown = ", ".join(f"{k}={v}" for k, v in point.items())
                raise ValueError(f"sweep: at {shown}: {exc}") from None
        return self

    def _federated_checks(self) -> None:
        """Partition size vs number of workers; open system vs synchronous rules."""
        partition = (self.problem.model_extra or {}).get("partition")
        if isinstance(partition, dict) and "num_workers" in partition:
            n = _timing_workers(self.timing)
            if n is not None and partition["num_workers"] != n:
                raise ValueError(
                    f"problem.partition.num_workers: {partition['num_workers']} "
                    f"shards but the timing model has {n} workers"
                )
        avail = self.availability
        if avail is not None and avail.open_system is not None:
            for name, m in self.methods.items():
                if m.policy in ("rennala", "minibatch"):
                    raise ValueError(
                        f"availability.open_system: policy {m.policy!r} (method "
                        f"{name!r}) needs every worker busy; use an asynchronous "
                        "or federated policy"
                    )

    # -- derived views ------------------------------------------------------

    @property
    def reference_method(self) -> str | None:
        """The method speedups are measured against: ``reference``, else the first
        method with a ``max_norm``, else the first method."""
        if self.reference is not None:
            return self.reference
        for name, m in self.methods.items():
            if m.max_norm is not None:
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
                **m.model_dump(
                    mode="json",
                    include={*_COMMON_METHOD_FIELDS, *METHOD_POLICIES[m.policy][1]},
                    exclude_none=True,
                ),
                "grid_size": len(m.grid()),
            }
            for name, m in self.methods.items()
        }
        return out


# ---------------------------------------------------------------------------
# Loading, overrides and error messages.


def problem_names() -> list[str]:
    """Return the registered problem names (empty if the registry is unavailable)."""
    try:
        from clipasync import problems
    except ImportError:  # pragma: no cover - registry not importable
        return []
    registry = getattr(problems, "PROBLEMS", None)
    return sorted(registry) if registry else []


def noise_kinds() -> list[str]:
    """Return the registered noise kinds (empty if the registry is unavailable)."""
    try:
        from clipasync.problems.noise import NOISES
    except ImportError:  # pragma: no cover
        return []
    return sorted(NOISES)


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


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.sub=value`` and parse the value as YAML.

    Raises:
        ConfigError: If there is no ``=`` or the value is not valid YAML.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"bad override {text!r}: expected key.sub=value")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        line = str(exc).splitlines()[0]
        raise ConfigError(f"bad override {text!r}: {line}") from None


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
        raise ConfigError(one_line(exc)) from None


def apply_profile(raw: dict[str, Any], profile: str | None = None) -> None:
    """Apply a profile of ``raw['profiles']`` in place and drop the profile keys.

    Args:
        raw: Parsed experiment file (modified).
        profile: Profile name; ``None`` uses ``default_profile`` if the file has one.
            The chosen name is stored as ``raw['profile']``.

    Raises:
        ConfigError: If the profile is unknown or malformed.
    """
    profiles = raw.pop("profiles", None) or {}
    default = raw.pop("default_profile", None)
    if not isinstance(profiles, dict):
        raise ConfigError("config error at profiles: must be a mapping name -> {...}")
    name = profile if profile is not None else default
    if name is None:
        return
    if name not in profiles:
        known = ", ".join(map(str, profiles)) or "none defined"
        raise ConfigError(f"config error: unknown profile {name!r} (profiles: {known})")
    settings = profiles[name] or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"config error at profiles.{name}: must be a mapping")
    for key, value in settings.items():
        set_dotted(raw, str(key), value)
    raw["profile"] = str(name)


def load_config(
    path: str | Path, overrides: list[str] | None = None, profile: str | None = None
) -> ExperimentConfig:
    """Read, override and validate an experiment file.

    Args:
        path: YAML file.
        overrides: ``key.sub=value`` strings applied before validation; values are
            parsed as YAML (``--set methods.clipped.max_norm=[1,2]``).
        profile: Profile of the file's ``profiles`` to apply before ``overrides``
            (default: the file's ``default_profile``, if any).

    Raises:
        ConfigError: If the file is missing, not YAML, or invalid (one line).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config error: {p}{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error: {p} must hold a mapping")
    apply_profile(raw, profile)
    for text_override in overrides or []:
        key, value = parse_override(text_override)
        set_dotted(raw, key, value)
    return validate_config(raw)


def _unwrap(annotation: Any) -> list[Any]:
    """Return the model classes an annotation may hold (through Optional/list/dict)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType, list, dict):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Return the field names allowed at a location of the experiment file."""
    models: list[Any] = [ExperimentConfig]
    for part in loc:
        nxt: list[Any] = []
        for m in models:
            if part in m.model_fields:
                nxt.extend(_unwrap(m.model_fields[part].annotation))
        if nxt:
            models = nxt
        # A part that is not a field is a dict key (a method name): stay put.
    names: list[str] = []
    for m in models:
        names.extend(n for n in m.model_fields if n not in names)
    return names


_UNION_TAG = re.compile(r"^(int|float|str|bool|none|\w+\[.*\]|function-.*)$")
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.]*): (.*)$", re.DOTALL)


def one_line(exc: ValidationError) -> str:
    """Turn pydantic's report into ``config error at <field>: <what is wrong>``."""
    err = exc.errors(include_url=False)[0]
    # Drop list indices and the union-member tags pydantic inserts ("float",
    # "list[...]"): the user wrote neither.
    loc = tuple(
        p for p in err["loc"] if not isinstance(p, int) and not _UNION_TAG.match(p)
    )
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    msg = str(err.get("msg", "invalid"))
    if kind == "greater_than":
        msg = f"must be > {_num(ctx.get('gt'))} (got {got!r})"
    elif kind == "greater_than_equal":
        msg = f"must be >= {_num(ctx.get('ge'))} (got {got!r})"
    elif kind == "less_than_equal":
        msg = f"must be <= {_num(ctx.get('le'))} (got {got!r})"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')} (got {got!r})"
    elif kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1])
        msg = f"unknown field; allowed: {', '.join(allowed)}"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind in ("value_error", "assertion_error"):
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        m = _FIELD_PREFIX.match(msg)
        if m:
            # A model-level check names its own field: "reference: ..." at "".
            sub = m.group(1)
            if loc and sub.split(".")[0] == loc[0] and len(loc) == 1:
                loc = ()
            loc = (*loc, sub) if loc else (sub,)
            msg = m.group(2)
    elif got is not None and kind not in ("string_pattern_mismatch",):
        msg = f"{msg} (got {got!r})"
    msg = " ".join(msg.split())  # one line, whatever pydantic put in it
    where = ".".join(str(p) for p in loc)
    return f"config error at {where}: {msg}" if where else f"config error: {msg}"


def _num(value: Any) -> str:
    """Format a bound: 0.0 → ``0``, 1e-06 → ``1e-06``."""
    return f"{value:g}" if isinstance(value, float) else str(value)
