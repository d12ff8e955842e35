"""Heavy-ball momentum (clipasync.transforms.momentum): β = 0 is the identity."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.transforms import identity
from clipasync.transforms.momentum import momentum
from clipasync.types import UpdateContext


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: momentum(1.0), "beta"),
    ],
)
def test_bad_momentum_raises(build: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


def test_momentum_zero_is_identity() -> None:
    ctx = UpdateContext(0, 0, -1, 1)
    g = np.array([1.0, 2.0])
    m = momentum(0.0)
    u, _, _ = m.update(g, m.init(g), ctx)
    v, _, _ = identity().update(g, None, ctx)
    np.testing.assert_array_equal(u, v)
