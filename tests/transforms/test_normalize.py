"""normalize(): u = g/‖g‖, 0 ↦ 0, clip-compatible telemetry, the c → 0 limit of the
clip at a fixed effective step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.transforms import chain, clip_by_norm, scale
from clipasync.transforms.normalize import normalize
from clipasync.types import UpdateContext

CTX = UpdateContext(step=0, delay=0, worker=0, num_workers=4)


def apply(t, g, ctx=CTX):
    u, _, info = t.update(g, t.init(g), ctx)
    return u, info


def test_hand_computed_direction_and_telemetry() -> None:
    g = np.array([3.0, -4.0])
    before = g.copy()
    u, info = apply(normalize(), g)
    np.testing.assert_array_equal(u, np.array([0.6, -0.8]))
    assert info == {"pre_clip_norm": 5.0, "clipped": 1.0}
    np.testing.assert_array_equal(g, before)  # never mutated
    assert u is not g


def test_zero_maps_to_zero_and_is_not_counted_as_clipped() -> None:
    g = np.zeros(3)
    u, info = apply(normalize(), g)
    np.testing.assert_array_equal(u, np.zeros(3))
    assert info == {"pre_clip_norm": 0.0, "clipped": 0.0}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("magnitude", [1e-200, 1e200])
def test_norm_under_and_overflow_still_give_a_unit_vector(magnitude: float) -> None:
    # ‖g‖² underflows to 0 (1e-400) or overflows to inf (1e400) in float64.
    g = np.array([3.0, 4.0]) * magnitude
    u, info = apply(normalize(), g)
    np.testing.assert_allclose(u, [0.6, 0.8], rtol=1e-15)
    assert info["clipped"] == 1.0


def test_uses_the_norm_the_policy_already_computed() -> None:
    g = np.array([1.0, 0.0])
    ctx = UpdateContext(0, 0, 0, 1, 4.0, g)  # a (false) cached ‖g‖ = 4 for g
    u, info = apply(normalize(), g, ctx)
    np.testing.assert_array_equal(u, [0.25, 0.0])
    assert info["pre_clip_norm"] == 4.0


def test_every_output_has_unit_norm() -> None:
    rng = np.random.default_rng(0)
    t = normalize()
    for _ in range(100):
        g = rng.standard_cauchy(7) * 10.0 ** rng.integers(-8, 8)
        u, _ = apply(t, g)
        assert math.isclose(float(np.linalg.norm(u)), 1.0, rel_tol=1e-14)


def test_clip_at_a_small_level_with_fixed_effective_step_is_normalisation() -> None:
    # γ·clip_c(g) = (γc)·g/‖g‖ whenever ‖g‖ > c: the c → 0 limit at η = γ·c.
    eta = 0.05
    rng = np.random.default_rng(1)
    for c in (1e-1, 1e-3, 1e-6):
        clipped = chain(clip_by_norm(c), scale(eta / c))
        normalised = chain(normalize(), scale(eta))
        for _ in range(20):
            g = rng.normal(size=5) + 0.5  # ‖g‖ > 0.1 for these draws
            assert np.linalg.norm(g) > c
            u_clip, i_clip = apply(clipped, g)
            u_norm, i_norm = apply(normalised, g)
            np.testing.assert_allclose(u_clip, u_norm, rtol=1e-13, atol=0)
            assert i_clip["clipped"] == i_norm["clipped"] == 1.0
            assert i_clip["pre_clip_norm"] == i_norm["pre_clip_norm"]
