"""Typed hyperparameters: the parameter classes of the method registry are frozen
dataclasses whose fields, with their defaults, are a method's hyperparameters.

A field's metadata says how the experiment layer treats it:

* :func:`axis` — a grid axis: a YAML file gives one value or a list (floats also a
  power grid), and ``tag`` prefixes its value in run ids (``g0.5``);
* :func:`setting` — ``parse`` turns the plain value of a YAML file or of a run
  record into the field's type (a staleness spec into a function), ``yaml`` is the
  plain type a file gives, ``omit_none`` leaves the field out of the record
  while it is ``None``, and ``legacy`` is the value a run record written before
  the field existed stands for (a default that changed: old records read back as
  what they ran, new YAML files get the new default).

A field with ``init=False`` is a constant of the method that its run records keep.
:func:`to_hyper` is the plain record of a parameter object (the ``hyper`` of run
settings, summaries and run-id hashes); :func:`from_hyper` reads one back. Values are
checked once, in ``__post_init__``, with the helpers below, which raise
:class:`~clipasync.errors.HyperparameterError` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from clipasync.errors import HyperparameterError

#: Metadata keys of a hyperparameter field.
GRID, TAG, PARSE, YAML, OMIT_NONE = "grid", "tag", "parse", "yaml", "omit_none"
LEGACY = "legacy"

_UNSET: Any = object()


def axis(tag: str | None = None) -> dict[str, Any]:
    """Metadata of a grid axis whose values show in run ids as ``<tag><value>``."""
    return {GRID: True, TAG: tag}


def setting(
    *,
    parse: Callable[[Any], Any] | None = None,
    yaml: Any = None,
    omit_none: bool = False,
    legacy: Any = _UNSET,
) -> dict[str, Any]:
    """Metadata of a fixed (non-grid) field with a plain form other than its type,
    or whose records from before it existed mean ``legacy``."""
    out: dict[str, Any] = {OMIT_NONE: omit_none}
    if legacy is not _UNSET:
        out[LEGACY] = legacy
    if parse is not None:
        out[PARSE] = parse
    if yaml is not None:
        out[YAML] = yaml
    return out


def fields_of(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    """Return the fields of a parameter class (a dataclass), in record order."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    return dataclasses.fields(cls)


def is_axis(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get(GRID))


def tags(cls: type) -> tuple[tuple[str, str], ...]:
    """Return (field, run-id tag) of the tagged axes of a parameter class."""
    return tuple(
        (f.name, str(f.metadata[TAG]))
        for f in fields_of(cls)
        if is_axis(f) and f.metadata.get(TAG)
    )


def _plain(value: Any) -> Any:
    to_config = getattr(value, "to_config", None)
    return to_config() if callable(to_config) else value


def to_hyper(params: Any) -> dict[str, Any]:
    """Return the plain record of a parameter object: every field in field order,
    structured values by their ``to_config()``, ``omit_none`` fields only when set."""
    out: dict[str, Any] = {}
    for f in fields_of(type(params)):
        value = getattr(params, f.name)
        if value is None and f.metadata.get(OMIT_NONE):
            continue
        out[f.name] = _plain(value)
    return out


def parse_field(f: dataclasses.Field[Any], value: Any) -> Any:
    """Return a field's value from its plain form (``parse``, if the field has one).

    Raises:
        HyperparameterError: If the plain value is invalid (nested names dotted).
    """
    parse = f.metadata.get(PARSE)
    if parse is None or value is None:
        return value
    try:
        return parse(value)
    except HyperparameterError as exc:
        raise exc.within(f.name) from None
    except ValueError as exc:  # a ConfigError of the parser names no field
        raise HyperparameterError(f.name, str(exc)) from None
    except TypeError as exc:
        raise HyperparameterError(f.name, f"bad value {value!r} ({exc})") from None


def from_hyper(cls: type[Any], hyper: Mapping[str, Any]) -> Any:
    """Return the parameter object of a plain record (keys that are not init fields
    of ``cls``, such as its constants, are ignored; missing ones take their
    ``legacy`` value if the field has one, else its default).

    Raises:
        HyperparameterError: If a value is invalid.
    """
    kwargs: dict[str, Any] = {}
    for f in fields_of(cls):
        if not f.init:
            continue
        if f.name in hyper:
            kwargs[f.name] = parse_field(f, hyper[f.name])
        elif LEGACY in f.metadata:
            kwargs[f.name] = f.metadata[LEGACY]
    return cls(**kwargs)


# ---------------------------------------------------------------------------
# Checks (one line each, the field named by the error).


def got(value: Any) -> str:
    """Format an offending value: floats as ``%g`` (``-1``, ``0.5``), others by repr."""
    return f"{value:g}" if isinstance(value, float) else repr(value)


def positive(name: str, value: float, *, finite: bool = True) -> None:
    """Require value > 0 (and finite unless ``finite=False``, where inf is allowed)."""
    if math.isnan(value) or not value > 0:
        raise HyperparameterError(name, f"must be > 0 (got {got(value)})")
    if finite and math.isinf(value):
        raise HyperparameterError(name, f"must be finite (got {got(value)})")


def at_least(name: str, value: int, low: int) -> None:
    """Require an integer value >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise HyperparameterError(name, f"must be an integer (got {got(value)})")
    if value < low:
        raise HyperparameterError(name, f"must be >= {low} (got {value})")


def in_range(
    name: str, value: float, low: float, high: float, *, closed: str = "[)"
) -> None:
    """Require ``low <= value < high`` (``closed`` "[)", "(]", "()" or "[]")."""
    ok_low = value >= low if closed[0] == "[" else value > low
    ok_high = value <= high if closed[1] == "]" else value < high
    if not ok_low:
        op = ">=" if closed[0] == "[" else ">"
        raise HyperparameterError(name, f"must be {op} {low:g} (got {got(value)})")
    if not ok_high:
        op = "<=" if closed[1] == "]" else "<"
        raise HyperparameterError(name, f"must be {op} {high:g} (got {got(value)})")


def one_of(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Require one of ``choices``."""
    if value not in choices:
        shown = " or ".join(repr(c) for c in choices)
        raise HyperparameterError(name, f"must be {shown} (got {value!r})")


def fmt_value(v: Any) -> str:
    """Format a value for a label: floats as ``%g``, others by ``str``."""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
