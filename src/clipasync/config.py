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
}

_COMMON_METHOD_FIELDS = ("policy", "stepsize", "max_norm", "delay_adaptive")
_REQUIRED_METHOD_FIELDS = {"ringmaster": ("max_delay",), "rennala": ("batch_size",)}

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

MethodPolicy = Literal["async_sgd", "ringmaster", "rennala", "minibatch"]
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

    ``kind`` names a noise of :mod:`clipasync.noise`; other keys are its parameters
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


class MethodConfig(_Strict):
    """One method of the comparison: a policy and its hyperparameter grid.

    ``stepsize`` (alias ``lr``) is a number, a list or a power grid
    ``{base: 2, min_exp: -9, max_exp: -1}``. ``max_norm``, ``max_delay`` and
    ``batch_size`` are numbers or lists; every list is a grid axis.
    """

    policy: MethodPolicy
    stepsize: list[PositiveFloat] = Field(
        validation_alias=AliasChoices("stepsize", "lr")
    )
    max_norm: list[PositiveFloat] | None = None
    delay_adaptive: bool = False
    assign: Literal["same", "random"] = "same"
    max_delay: list[PositiveInt] | None = None
    cancel_stale: bool = False
    batch_size: list[PositiveInt] | None = None

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

    @field_validator("stepsize", "max_norm", "max_delay", "batch_size")
    @classmethod
    def _grid_nonempty(cls, v: list[Any] | None) -> list[Any] | None:
        return _nonempty(v)

    @model_validator(mode="after")
    def _fields_of_policy(self) -> MethodConfig:
        allowed = {*_COMMON_METHOD_FIELDS, *METHOD_POLICIES[self.policy][1]}
        for name in sorted(self.model_fields_set):
            if name not in allowed:
                raise ValueError(
                    f"{name}: not a field of policy {self.policy!r} "
                    f"(its fields: {', '.join(sorted(allowed))})"
                )
        for name in _REQUIRED_METHOD_FIELDS.get(self.policy, ()):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required for policy {self.policy!r}")
        return self

    def grid(self) -> list[dict[str, Any]]:
        """Return every grid point: the Cartesian product of the list fields.

        Each point holds ``stepsize``, ``max_norm`` (``None``: no clipping),
        ``delay_adaptive`` and the policy's own fields.
        """
        axes: dict[str, list[Any]] = {
            "stepsize": self.stepsize,
            "max_norm": self.max_norm if self.max_norm is not None else [None],
        }
        if self.policy == "ringmaster":
            axes["max_delay"] = self.max_delay or []
        if self.policy == "rennala":
            axes["batch_size"] = self.batch_size or []
        fixed: dict[str, Any] = {"delay_adaptive": self.delay_adaptive}
        if self.policy == "async_sgd":
            fixed["assign"] = self.assign
        if self.policy == "ringmaster":
            fixed["cancel_stale"] = self.cancel_stale
        names = list(axes)
        return [
            {**dict(zip(names, values, strict=True)), **fixed}
            for values in itertools.product(*axes.values())
        ]


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
        if self.stop.target is not None and self.eval_every is None:
            raise ValueError("eval_every: required when stop.target is set")
        for point in self.sweep_points():
            if not point:
                continue
            try:
                self.at(point)
            except ConfigError as exc:
                shown = ", ".join(f"{k}={v}" for k, v in point.items())
                raise ValueError(f"sweep: at {shown}: {exc}") from None
        return self

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
        from clipasync.noise import NOISES
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


def load_config(
    path: str | Path, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Read, override and validate an experiment file.

    Args:
        path: YAML file.
        overrides: ``key.sub=value`` strings applied before validation; values are
            parsed as YAML (``--set methods.clipped.max_norm=[1,2]``).

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
