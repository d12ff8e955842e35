"""Value types shared by the models of an experiment file: strict models, positive
numbers, and grid-valued fields (a scalar is a one-point grid; a power grid
``{base: 2, min_exp: -9, max_exp: -1}`` is base**e for e = min_exp..max_exp)."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clipasync.experiments.limits import check_at_most

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(ge=1)]


#: Strict values (a YAML file is typed text: ``true`` is not 1, ``"no"`` is not a
#: boolean, ``2.5`` is not an integer, ``.nan`` and ``.inf`` are no number of a
#: config) for every model of an experiment file.
STRICT_VALUES = ConfigDict(strict=True, allow_inf_nan=False)


class Strict(BaseModel):
    """A model that rejects unknown keys (the error lists the allowed ones) and
    values of the wrong type (:data:`STRICT_VALUES`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, **STRICT_VALUES)

    #: Fields where ``null`` is a value of its own (``refine: null``: no
    #: refinement); elsewhere ``null`` is refused, not read as the default.
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if (
                    value is None
                    and key in cls.model_fields
                    and key not in cls.NULLABLE
                ):
                    raise ValueError(
                        f"{key}: null is not a value; give one or leave the key out"
                    )
        return data


def as_list(value: Any) -> Any:
    """Scalar → one-element list; lists pass through; None stays None."""
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


def powers(value: dict[str, Any]) -> list[float]:
    """Return the values of a power grid ``{base, min_exp, max_exp}``.

    Raises:
        ValueError: On an unknown or missing key, or a bad base or exponent.
    """
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
    if isinstance(base, bool) or not math.isfinite(base):
        raise ValueError(f"power grid base must be a finite number > 0 (got {base!r})")
    if not all(isinstance(e, int) and not isinstance(e, bool) for e in (lo, hi)):
        raise ValueError(f"min_exp and max_exp must be integers (got {lo!r}, {hi!r})")
    check_at_most("power grid", hi - lo + 1, "grid", "points")
    try:
        out = [float(base) ** e for e in range(lo, hi + 1)]
    except OverflowError:
        out = [math.inf]
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(
            f"power grid {base}**{lo}..{base}**{hi} leaves the floating-point range"
        )
    return out


def nonempty(value: list[Any] | None) -> list[Any] | None:
    """Reject an empty grid."""
    if value is not None and len(value) == 0:
        raise ValueError("empty grid: give at least one value")
    return value
