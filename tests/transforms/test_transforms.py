"""Gradient transforms: exact clipping, stepsizes, chaining."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clipasync.errors import ConfigError
from clipasync.transforms import (
    chain,
    clip_by_norm,
    identity,
    mishchenko_delay_rule,
    scale,
    scale_by_delay,
)
from clipasync.types import UpdateContext

CTX = UpdateContext(step=0, delay=0, worker=0, num_workers=4)


def apply(t, g, ctx=CTX):
    u, _, info = t.update(g, t.init(g), ctx)
    return u, info


def test_clip_hand_computed_values():
    # ‖(3, 4)‖ = 5 > 2: scaled by exactly 2/5 (no epsilon, unlike torch's +1e-6).
    u, info = apply(clip_by_norm(2.0), np.array([3.0, 4.0]))
    np.testing.assert_array_equal(u, np.array([3.0 * 0.4, 4.0 * 0.4]))
    assert info == {"pre_clip_norm": 5.0, "clipped": 1.0}
    # Exactly at the level: unchanged, not clipped.
    g = np.array([3.0, 4.0])
    u, info = apply(clip_by_norm(5.0), g)
    assert u is g and info["clipped"] == 0.0


def test_clip_zero_vector_is_safe():
    u, info = apply(clip_by_norm(1.0), np.zeros(3))
    np.testing.assert_array_equal(u, np.zeros(3))
    assert info["pre_clip_norm"] == 0.0 and info["clipped"] == 0.0


@pytest.mark.parametrize("level", [None, math.inf])
def test_clip_disabled_is_identity_but_reports_norm(level):
    g = np.array([30.0, 40.0])
    u, info = apply(clip_by_norm(level), g)
    assert u is g and info["pre_clip_norm"] == 50.0


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_clip_rejects_bad_levels(bad):
    with pytest.raises(ConfigError, match="max_norm must be positive"):
        clip_by_norm(bad)


vectors = arrays(
    np.float64,
    st.integers(1, 20),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
levels = st.floats(1e-3, 1e3)


@settings(max_examples=200, deadline=None)
@given(g=vectors, c=levels)
def test_clip_properties(g, c):
    u, info = apply(clip_by_norm(c), g)
    norm = float(np.linalg.norm(g))
    assert np.linalg.norm(u) <= c * (1 + 1e-12)
    if norm <= c:
        np.testing.assert_array_equal(u, g)
    else:
        # Same direction: u = λ g with λ = c/‖g‖ ∈ (0, 1).
        np.testing.assert_allclose(u, g * (c / norm), rtol=1e-12, atol=0)
        assert np.linalg.norm(u) == pytest.approx(c, rel=1e-12)
    # Idempotent.
    v, _ = apply(clip_by_norm(c), u)
    np.testing.assert_allclose(v, u, rtol=1e-12, atol=0)
    assert info["pre_clip_norm"] == pytest.approx(norm, rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(g=vectors)
def test_chain_identity_is_neutral(g):
    a, _ = apply(chain(identity(), scale(0.5)), g)
    b, _ = apply(scale(0.5), g)
    np.testing.assert_array_equal(a, b)


def test_scale_and_chain_order():
    u, info = apply(chain(clip_by_norm(1.0), scale(0.1)), np.array([0.0, 10.0]))
    np.testing.assert_allclose(u, [0.0, 0.1])
    assert info["stepsize"] == 0.1 and info["clipped"] == 1.0
    # Scaling first then clipping is a different method: clip level applies to γg.
    u2, _ = apply(chain(scale(0.1), clip_by_norm(1.0)), np.array([0.0, 10.0]))
    np.testing.assert_allclose(u2, [0.0, 1.0])


@pytest.mark.parametrize("bad", [0.0, -0.1, math.inf, math.nan])
def test_scale_rejects_bad_stepsizes(bad):
    with pytest.raises(ConfigError, match="stepsize"):
        scale(bad)
    with pytest.raises(ConfigError, match="stepsize"):
        scale_by_delay(bad)


def test_delay_rule_hand_values():
    # γ·min(1, n/delay) with n = 4.
    assert mishchenko_delay_rule(0, 4) == 1.0
    assert mishchenko_delay_rule(4, 4) == 1.0
    assert mishchenko_delay_rule(8, 4) == 0.5
    assert mishchenko_delay_rule(40, 4) == 0.1
    ctx = UpdateContext(step=10, delay=12, worker=1, num_workers=4)
    u, info = apply(scale_by_delay(0.3), np.array([1.0, -2.0]), ctx)
    np.testing.assert_allclose(u, [0.1, -0.2])
    assert info["stepsize"] == pytest.approx(0.1)


def test_scale_by_delay_with_small_delays_equals_scale():
    g = np.array([0.7, -1.3])
    for delay in range(5):
        ctx = UpdateContext(step=0, delay=delay, worker=0, num_workers=4)
        a, _ = apply(scale_by_delay(0.25), g, ctx)
        b, _ = apply(scale(0.25), g, ctx)
        np.testing.assert_array_equal(a, b)


def test_transform_does_not_mutate_input():
    g = np.array([3.0, 4.0])
    before = g.copy()
    apply(chain(clip_by_norm(1.0), scale(2.0)), g)
    np.testing.assert_array_equal(g, before)
