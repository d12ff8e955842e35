"""The ``methods:`` block of an experiment file, read from the method registry.

A method names a registered ``policy`` (:mod:`clipasync.policies.registry`); its
other keys are the fields of that policy's parameter class. The YAML schema of each
policy is derived from the class: a grid axis takes a number, a list or (numbers) a
power grid ``{base: 2, min_exp: -9, max_exp: -1}``, and every list is a grid axis
(Cartesian product); ``lr`` is an alias of ``stepsize``. Pydantic checks only the
types; the values are checked once, by the parameter class, and a
:class:`~clipasync.errors.HyperparameterError` comes out as one line naming the
YAML path (``config error at methods.clipped.max_norm: must be > 0 (got -1)``).

Each grid point becomes a typed parameter object here, once
(:meth:`MethodConfig.points`); its plain record (:meth:`MethodConfig.grid`) is the
``hyper`` of run settings.
"""

from __future__ import annotations

import itertools
import math
import types
import typing
from dataclasses import MISSING, is_dataclass
from typing import TYPE_CHECKING, Any, Union

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from clipasync.errors import HyperparameterError
from clipasync.experiments.fields import STRICT_VALUES, as_list, nonempty, powers
from clipasync.experiments.limits import check_at_most
from clipasync.experiments.messages import describe, fields_at
from clipasync.experiments.relative import (
    GridPoint,
    NoiseScale,
    RelativeAxes,
    probe_scale,
    resolve,
    split_relative,
)
from clipasync.policies.hyper import YAML, fields_of, is_axis, parse_field
from clipasync.policies.registry import MethodEntry, entries, lookup

#: YAML aliases of hyperparameters (``lr: 0.1`` is ``stepsize: 0.1``).
ALIASES = {"stepsize": "lr"}


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _nested(annotation: Any) -> Any:
    """Replace a dataclass in an annotation by its YAML model (``X | None`` too)."""
    members = _members(annotation)
    if not any(isinstance(m, type) and is_dataclass(m) for m in members):
        return annotation
    out: Any = None
    for m in members:
        part = yaml_model(m) if isinstance(m, type) and is_dataclass(m) else m
        out = part if out is None else out | part
    return out


def _axis_values(floats: bool, required: bool) -> Any:
    def before(cls: type[BaseModel], v: Any) -> Any:
        if v is None and required:
            raise ValueError("give a value or a list of values (got None)")
        if isinstance(v, dict) and floats:
            return powers(v)
        return as_list(v)

    return classmethod(before)


def _one_name(pairs: tuple[tuple[str, str], ...]) -> Any:
    def before(cls: type[BaseModel], data: Any) -> Any:
        if isinstance(data, dict):
            for name, alias in pairs:
                if name in data and alias in data:
                    raise ValueError(f"give {name} or its alias {alias}, not both")
        return data

    return classmethod(before)


_MODELS: dict[type, type[BaseModel]] = {}


def yaml_model(cls: type) -> type[BaseModel]:
    """Return the pydantic model of the YAML form of a parameter class (cached).

    Grid axes become lists (``None``: the field's default); nested dataclasses
    become nested models; a field's ``yaml`` metadata replaces its type.
    """
    model = _MODELS.get(cls)
    if model is None:
        model = _MODELS[cls] = _build_model(cls)
    return model


def _build_model(cls: type) -> type[BaseModel]:
    hints = typing.get_type_hints(cls)
    definitions: dict[str, Any] = {}
    validators: dict[str, Any] = {}
    aliases: list[tuple[str, str]] = []
    for f in fields_of(cls):
        if not f.init:
            continue
        annotation = f.metadata.get(YAML, hints[f.name])
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        kwargs: dict[str, Any] = {}
        if f.name in ALIASES:
            aliases.append((f.name, ALIASES[f.name]))
            kwargs["validation_alias"] = AliasChoices(f.name, ALIASES[f.name])
        if is_axis(f):
            if f.default_factory is not MISSING:
                raise TypeError(f"grid axis {f.name!r} cannot have a default_factory")
            annotation = list[annotation] | None if has_default else list[annotation]  # type: ignore[valid-type]
            default: Any = None if has_default else ...
            floats = float in _members(hints[f.name])
            validators[f"_{f.name}_grid"] = field_validator(f.name, mode="before")(
                _axis_values(floats, not has_default)
            )
            validators[f"_{f.name}_nonempty"] = field_validator(f.name)(
                classmethod(lambda cls, v: nonempty(v))
            )
        else:
            annotation = _nested(annotation)
            if YAML in f.metadata or f.default_factory is not MISSING:
                default = None  # the parameter class supplies the default
            else:
                default = f.default if f.default is not MISSING else ...
        definitions[f.name] = (annotation, Field(default, **kwargs))
    if aliases:
        validators["_one_name"] = model_validator(mode="before")(
            _one_name(tuple(aliases))
        )
    return create_model(
        cls.__name__,
        __config__=ConfigDict(extra="forbid", populate_by_name=True, **STRICT_VALUES),
        __validators__=validators,
        **definitions,
    )


def grid_axes(
    entry: MethodEntry[Any], values: dict[str, Any]
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Return the grid axes (field order; a default for an axis not given) and the
    fixed fields (parsed) of a method's values.

    Raises:
        HyperparameterError: If a fixed value does not parse (the field is named).
    """
    axes: dict[str, list[Any]] = {}
    fixed: dict[str, Any] = {}
    for f in fields_of(entry.params):
        if not f.init:
            continue
        value = values.get(f.name)
        if is_axis(f):
            axes[f.name] = value if value is not None else [f.default]
        elif value is not None:
            fixed[f.name] = parse_field(f, value)
    return axes, fixed


def grid_points(
    entry: MethodEntry[Any],
    values: dict[str, Any],
    relative: RelativeAxes | None = None,
    scale: NoiseScale | None = None,
) -> list[GridPoint]:
    """Return every grid point (Cartesian product, axes in field order).

    Args:
        entry: The method's registry entry.
        values: Its validated values (grid axes as lists).
        relative: Relative axes (their values sit under ``stepsize`` and
            ``max_norm``, see :func:`~clipasync.experiments.relative.split_relative`).
        scale: Quantile level → noise norm, for a ``noise_quantile`` axis.

    Raises:
        HyperparameterError: If a value is out of range (the field is named).
    """
    axes, fixed = grid_axes(entry, values)
    if relative is not None:
        if relative.effective_step is not None:
            axes["stepsize"] = list(relative.effective_step)
        if relative.noise_quantile is not None:
            axes["max_norm"] = list(relative.noise_quantile)
    names = list(axes)
    out = []
    for combo in itertools.product(*axes.values()):
        point = dict(zip(names, combo, strict=True))
        extra: dict[str, float] = {}
        if relative is not None:
            point, extra = resolve(point, relative, scale)
        out.append(GridPoint(entry.params(**point, **fixed), extra))
    return out


def _unknown(entry: MethodEntry[Any], model: type[BaseModel]) -> Any:
    def message(loc: tuple[str, ...], name: str) -> str:
        if loc:
            return f"unknown field; allowed: {', '.join(fields_at(model, loc))}"
        own = ("policy", *entry.fields)
        known = {n for e in entries() for n in e.fields} | set(ALIASES.values())
        if name in known:
            return (
                f"not a field of policy {entry.name!r} "
                f"(its fields: {', '.join(sorted(own))})"
            )
        return f"unknown field; allowed: {', '.join(own)}"

    return message


class MethodConfig(BaseModel):
    """One method of the comparison: a registered ``policy`` and its grid.

    After validation the hyperparameters are attributes (``method.stepsize``,
    ``method.max_norm``: lists for grid axes, ``None`` where not given) and
    :attr:`values`; :meth:`points` are the typed grid points.
    """

    model_config = ConfigDict(extra="allow")

    policy: str
    _points: list[GridPoint] = PrivateAttr(default_factory=list)
    _relative: RelativeAxes | None = PrivateAttr(default=None)

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

    @field_validator("policy", mode="before")
    @classmethod
    def _registered(cls, policy: Any) -> str:
        return lookup(policy).name

    @model_validator(mode="after")
    def _hyperparameters(self) -> MethodConfig:
        entry = lookup(self.policy)
        model = yaml_model(entry.params)
        raw, relative = split_relative(entry, dict(self.__pydantic_extra__ or {}))
        try:
            given = model.model_validate(raw)
        except ValidationError as exc:
            where, msg = describe(exc, model, _unknown(entry, model))
            raise ValueError(f"{where}: {msg}" if where else msg) from None
        values = {
            name: v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v
            for name, v in given
        }
        self._relative = relative
        check_at_most(
            "grid",
            math.prod(len(v) for v in values.values() if isinstance(v, list)),
            "grid",
            "points",
        )
        try:
            # A quantile grid is checked at c = 1 here and resolved per problem.
            quantiles = relative is not None and relative.noise_quantile is not None
            points = grid_points(
                entry, values, relative, probe_scale if quantiles else None
            )
        except HyperparameterError as exc:
            # Name the field as the file does (``lr`` for ``stepsize``).
            if ALIASES.get(exc.field) in raw:
                raise HyperparameterError(ALIASES[exc.field], exc.detail) from None
            raise
        self._points = [] if quantiles else points
        self.__pydantic_extra__ = (
            values if relative is None else relative.file_form(values)
        )
        return self

    @property
    def entry(self) -> MethodEntry[Any]:
        """The registry entry of the policy."""
        return lookup(self.policy)

    @property
    def values(self) -> dict[str, Any]:
        """The hyperparameters as the file gives them (grid axes as lists)."""
        return dict(self.__pydantic_extra__ or {})

    @property
    def clips(self) -> bool:
        """Whether some grid point clips at a fixed (or noise-relative) ``max_norm``."""
        if self.needs_noise_scale:
            return True
        return any(c is not None for c in self.values.get("max_norm") or ())

    @property
    def relative(self) -> RelativeAxes | None:
        """The relative axes (effective step, noise quantile), if the file uses any."""
        return self._relative

    @property
    def needs_noise_scale(self) -> bool:
        """Whether the grid has a ``noise_quantile`` axis (resolved per problem)."""
        return self._relative is not None and self._relative.noise_quantile is not None

    def axis_values(self) -> dict[str, list[Any]]:
        """Return each grid axis's values as the file gives them (field order; the
        effective step under ``stepsize``, quantile levels under ``max_norm``)."""
        entry = self.entry
        axes, _ = grid_axes(entry, self.values)
        rel = self._relative
        if rel is not None and rel.effective_step is not None:
            axes["stepsize"] = list(rel.effective_step)
        if rel is not None and rel.noise_quantile is not None:
            axes["max_norm"] = list(rel.noise_quantile)
        return axes

    def grid_size(self) -> int:
        """Return the number of grid points (the method's budget)."""
        return math.prod(len(v) for v in self.axis_values().values())

    def grid_points(self, scale: NoiseScale | None = None) -> list[GridPoint]:
        """Return every grid point (parameters and relative coordinates).

        Args:
            scale: Quantile level → noise norm; required for a ``noise_quantile``
                axis (:func:`clipasync.experiments.noise_scale.noise_scale`).

        Raises:
            HyperparameterError: If a quantile grid has no scale, or a resolved
                point is out of range.
        """
        if not self.needs_noise_scale:
            return list(self._points)
        return grid_points(self.entry, self.values, self._relative, scale)

    def points(self, scale: NoiseScale | None = None) -> list[Any]:
        """Return the typed parameters of every grid point (Cartesian product)."""
        return [g.params for g in self.grid_points(scale)]

    def grid(self, scale: NoiseScale | None = None) -> list[dict[str, Any]]:
        """Return every grid point as the plain record of run settings (``hyper``:
        the parameters' fields, then the relative coordinates when used)."""
        entry = self.entry
        return [
            {**entry.to_hyper(g.params), **g.extra} for g in self.grid_points(scale)
        ]
