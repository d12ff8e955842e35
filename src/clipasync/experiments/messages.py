"""Pydantic's validation report → one line naming the YAML field.

``config error at methods.clipped.max_norm: must be > 0 (got -1)``: the first error
only, list indices and pydantic's union-member tags dropped, bounds and choices
written as a user reads them. A validator that names its own field (``"reference:
unknown method ..."``, or a :class:`~clipasync.errors.HyperparameterError`) has it
appended to the location.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

_UNION_TAG = re.compile(r"^(int|float|str|bool|none|\w+\[.*\]|function-.*)$")
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.]*): (.*)$", re.DOTALL)

#: ``unknown(location, field) -> message`` for a field the model does not have.
UnknownField = Callable[[tuple[str, ...], str], str]


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


def fields_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Return the field names allowed at a location below the model ``root``."""
    models: list[Any] = [root]
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


def _num(value: Any) -> str:
    """Format a bound: 0.0 → ``0``, 1e-06 → ``1e-06``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe(
    exc: ValidationError,
    root: type[BaseModel] | None = None,
    unknown: UnknownField | None = None,
) -> tuple[str, str]:
    """Return (dotted location, message) of the first error of a report.

    Args:
        exc: Pydantic's report.
        root: The validated model (lists the allowed fields of an unknown one).
        unknown: Message for an unknown field (default: the allowed fields).
    """
    err = exc.errors(include_url=False)[0]
    # Drop list indices and the union-member tags pydantic inserts ("float",
    # "list[...]"): the user wrote neither.
    loc = tuple(
        str(p)
        for p in err["loc"]
        if not isinstance(p, int) and not _UNION_TAG.match(str(p))
    )
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    msg = str(err.get("msg", "invalid"))
    if kind == "greater_than":
        msg = f"must be > {_num(ctx.get('gt'))} (got {got!r})"
    elif kind == "greater_than_equal":
        msg = f"must be >= {_num(ctx.get('ge'))} (got {got!r})"
    elif kind == "less_than":
        msg = f"must be < {_num(ctx.get('lt'))} (got {got!r})"
    elif kind == "less_than_equal":
        msg = f"must be <= {_num(ctx.get('le'))} (got {got!r})"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')} (got {got!r})"
    elif kind == "extra_forbidden":
        if unknown is not None:
            msg = unknown(loc[:-1], loc[-1])
        else:
            allowed = fields_at(root, loc[:-1]) if root is not None else []
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
    return ".".join(loc), msg


def one_line(exc: ValidationError, root: type[BaseModel] | None = None) -> str:
    """Turn pydantic's report into ``config error at <field>: <what is wrong>``."""
    where, msg = describe(exc, root)
    return f"config error at {where}: {msg}" if where else f"config error: {msg}"
