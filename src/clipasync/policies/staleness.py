"""Staleness weights s(delay) for asynchronous federated aggregation.

FedAsync (Xie, Koyejo & Gupta 2019, §5.2) down-weights a client model that was trained
from an old server version by ``α_t = α · s(delay)``; FedBuff (Nguyen et al., AISTATS
2022) multiplies each buffered delta by s(delay). The three families of Xie et al.:

.. math::

    s_{\\text{const}}(τ) = 1, \\qquad
    s_{\\text{poly}}(τ) = (1 + τ)^{-a}, \\qquad
    s_{\\text{hinge}}(τ) = \\begin{cases} 1 & τ \\le b \\\\
        \\dfrac{1}{a(τ - b) + 1} & τ > b \\end{cases}

where τ = ``delay`` = server version at arrival − version the client started from
("staleness" in the FL papers). FedBuff's common choice ``1/sqrt(1 + τ)`` is
``PolynomialStaleness(exponent=0.5)``.

Examples:
    >>> PolynomialStaleness(0.5)(3)
    0.5
    >>> HingeStaleness(a=1.0, b=2)(5)
    0.25
    >>> make_staleness({"kind": "constant"})(100)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from clipasync.errors import ConfigError


class StalenessFn(Protocol):
    """A weight s(delay) in (0, 1], non-increasing in the delay."""

    def __call__(self, delay: int) -> float:
        """Return s(delay) for a delay >= 0."""
        ...

    def to_config(self) -> dict[str, Any]:
        """Return the parameters as plain data (for records)."""
        ...


def _check_delay(delay: int) -> None:
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay}")


@dataclass(frozen=True, slots=True)
class ConstantStaleness:
    """s(delay) = 1: every arrival gets the same weight."""

    def __call__(self, delay: int) -> float:
        _check_delay(delay)
        return 1.0

    def to_config(self) -> dict[str, Any]:
        return {"kind": "constant"}


@dataclass(frozen=True, slots=True)
class PolynomialStaleness:
    """s(delay) = (1 + delay)^(−a).

    Args:
        exponent: a >= 0 (``0`` is the constant weight; FedBuff uses 0.5).

    Raises:
        ConfigError: If ``exponent`` is negative or not finite.
    """

    exponent: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.exponent) and self.exponent >= 0):
            raise ConfigError(
                f"staleness exponent must be finite and >= 0, got {self.exponent}"
            )

    def __call__(self, delay: int) -> float:
        _check_delay(delay)
        return float((1.0 + delay) ** -self.exponent)

    def to_config(self) -> dict[str, Any]:
        return {"kind": "polynomial", "exponent": self.exponent}


@dataclass(frozen=True, slots=True)
class HingeStaleness:
    """s(delay) = 1 if delay <= b, else 1 / (a (delay − b) + 1).

    Args:
        a: Slope a > 0 of the decay after the hinge.
        b: Hinge b >= 0: delays up to b keep the full weight.

    Raises:
        ConfigError: If ``a`` is not positive and finite or ``b`` is negative.
    """

    a: float
    b: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and self.a > 0):
            raise ConfigError(
                f"hinge slope a must be positive and finite, got {self.a}"
            )
        if not self.b >= 0:
            raise ConfigError(f"hinge point b must be >= 0, got {self.b}")

    def __call__(self, delay: int) -> float:
        _check_delay(delay)
        if delay <= self.b:
            return 1.0
        return 1.0 / (self.a * (delay - self.b) + 1.0)

    def to_config(self) -> dict[str, Any]:
        return {"kind": "hinge", "a": self.a, "b": self.b}


#: Config ``kind`` -> staleness class; keyword arguments are the class fields.
STALENESS: dict[str, type[ConstantStaleness | PolynomialStaleness | HingeStaleness]] = {
    "constant": ConstantStaleness,
    "polynomial": PolynomialStaleness,
    "hinge": HingeStaleness,
}


def make_staleness(spec: str | Mapping[str, Any] | None) -> StalenessFn:
    """Build a staleness function from a config value.

    Args:
        spec: ``None`` or ``"constant"`` (weight 1), a kind name without parameters,
            or a mapping such as ``{"kind": "polynomial", "exponent": 0.5}`` or
            ``{"kind": "hinge", "a": 10, "b": 4}``.

    Raises:
        ConfigError: Unknown kind (the message lists the known ones) or bad
            parameters.
    """
    if spec is None:
        return ConstantStaleness()
    params = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = params.pop("kind", None)
    if kind not in STALENESS:
        raise ConfigError(
            f"unknown staleness kind {kind!r}; choose one of: {', '.join(STALENESS)}"
        )
    try:
        return STALENESS[kind](**params)
    except TypeError as exc:
        raise ConfigError(
            f"bad parameters for staleness kind {kind!r}: {exc}"
        ) from None
