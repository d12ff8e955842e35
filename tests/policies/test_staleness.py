"""Staleness weights of the federated methods (clipasync.policies.staleness): hand
values, the config factory and bad parameters."""

from __future__ import annotations

from typing import Any

import pytest

from clipasync.errors import ConfigError
from clipasync.policies.staleness import (
    ConstantStaleness,
    HingeStaleness,
    PolynomialStaleness,
    make_staleness,
)


def test_staleness_hand_values() -> None:
    c = ConstantStaleness()
    assert [c(d) for d in (0, 1, 1000)] == [1.0, 1.0, 1.0]
    p = PolynomialStaleness(0.5)
    assert [p(d) for d in (0, 3, 8)] == [1.0, 0.5, 1.0 / 3.0]
    assert PolynomialStaleness(1.0)(4) == 0.2
    h = HingeStaleness(a=2.0, b=3)
    assert [h(d) for d in (0, 3, 4, 5)] == [1.0, 1.0, 1.0 / 3.0, 0.2]
    assert make_staleness({"kind": "hinge", "a": 2.0, "b": 3}) == h
    with pytest.raises(ValueError, match="delay must be >= 0"):
        p(-1)


def test_make_staleness_polynomial_needs_exponent() -> None:
    assert make_staleness(None) == ConstantStaleness()
    assert make_staleness({"kind": "polynomial", "exponent": 1}) == PolynomialStaleness(
        1
    )
    with pytest.raises(ConfigError, match="bad parameters"):
        make_staleness("polynomial")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: PolynomialStaleness(-1.0), "exponent"),
        (lambda: HingeStaleness(a=0.0, b=1), "slope a"),
        (lambda: HingeStaleness(a=1.0, b=-1), "hinge point b"),
        (lambda: make_staleness({"kind": "exp"}), "unknown staleness kind"),
    ],
)
def test_bad_staleness_parameters_raise(build: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()
