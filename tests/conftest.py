"""Shared fixtures: a seeded rng and small exact problems."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


class ScriptedRng:
    """Stands in for a Generator whose ``integers`` returns scripted values."""

    def __init__(self, values: list[int]) -> None:
        self.values = list(values)

    def integers(self, high: int) -> int:
        v = self.values.pop(0)
        assert 0 <= v < high
        return v


def diag_quadratic_grad(
    worker: int, x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Exact gradient of f(x) = ½ x₁² + x₂² (∇f = (x₁, 2x₂)); ignores the rng."""
    del worker, rng
    return np.array([x[0], 2.0 * x[1]])


def noisy_quadratic_grad(
    worker: int, x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """∇f(x) + N(0, I) for f(x) = ½‖x‖² in any dimension."""
    del worker
    return x + rng.standard_normal(x.shape)
