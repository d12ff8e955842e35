"""One arrival through :class:`~clipasync.policies.columns.ColumnStep`, against
the update worked by hand: x − γ·clip_c(g) (Erickson & Johansson 2026, arXiv
2606.13287, Algorithm 1), normalised x − γ·g/‖g‖, and the delay-adaptive
γ·min(1, n/delay)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipasync.policies.columns import ColumnStep

INF = math.inf


def _step(max_delays: list[float] | None = None) -> ColumnStep:
    # Rows: clip at 1, normalise, no clip, delay-adaptive without clip.
    return ColumnStep(
        stepsizes=np.array([0.5, 0.1, 0.2, 0.4]),
        max_norms=np.array([1.0, INF, INF, INF]),
        normalized=np.array([False, True, False, False]),
        delay_adaptive=np.array([False, False, False, True]),
        max_delays=None if max_delays is None else np.array(max_delays),
    )


def test_each_row_takes_its_own_transform() -> None:
    g = np.tile([3.0, 4.0], (4, 1))  # ‖g‖ = 5
    xs = np.zeros((4, 2))
    delays = np.array([0, 0, 0, 8])  # 8 = 2n for the adaptive row: γ/2
    out = _step().update(xs, g, np.arange(4), delays, 4)
    want = -np.array(
        [
            [0.5 * 0.6, 0.5 * 0.8],  # clip to norm 1
            [0.1 * 0.6, 0.1 * 0.8],  # unit direction
            [0.2 * 3.0, 0.2 * 4.0],  # plain step
            [0.2 * 3.0, 0.2 * 4.0],  # 0.4 · min(1, 4/8)
        ]
    )
    np.testing.assert_allclose(out.new, want, rtol=1e-15)
    np.testing.assert_array_equal(out.info["pre_clip_norm"], [5.0] * 4)
    np.testing.assert_array_equal(out.info["clipped"], [1.0, 1.0, math.nan, math.nan])
    np.testing.assert_array_equal(out.info["stepsize"], [0.5, 0.1, 0.2, 0.2])
    assert out.applied.all() and not out.discarded.any() and not out.skipped.any()
    # The masks of an arrival nothing discards are shared: read-only.
    with pytest.raises(ValueError, match="read-only"):
        out.discarded[0] = True


def test_a_row_subset_and_a_norm_below_the_level() -> None:
    g = np.array([[0.3, 0.4], [0.0, 2.0]])  # norms 0.5 (under c = 1) and 2
    out = _step().update(np.ones((2, 2)), g, np.array([0, 3]), np.array([1, 2]), 4)
    np.testing.assert_allclose(out.new, [[0.85, 0.8], [1.0, 0.2]], rtol=1e-15)
    np.testing.assert_array_equal(out.info["clipped"], [0.0, math.nan])


def test_ringmaster_rows_discard_stale_arrivals_and_nonfinite_is_skipped() -> None:
    g = np.array([[3.0, 4.0], [3.0, 4.0], [math.nan, 0.0], [1.0, 0.0]])
    xs = np.ones((4, 2))
    step = _step(max_delays=[2.0, INF, INF, 3.0])
    out = step.update(xs, g, np.arange(4), np.array([2, 9, 0, 3]), 4)
    np.testing.assert_array_equal(out.discarded, [True, False, False, True])
    np.testing.assert_array_equal(out.skipped, [False, False, True, False])
    np.testing.assert_array_equal(out.applied, [False, True, False, False])
    np.testing.assert_array_equal(out.new[[0, 2, 3]], xs[[0, 2, 3]])
    np.testing.assert_allclose(out.new[1], [1 - 0.06, 1 - 0.08], rtol=1e-15)
    assert math.isnan(out.info["stepsize"][0]) and math.isnan(out.info["stepsize"][2])
