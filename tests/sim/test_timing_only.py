"""The timing-only path (clipasync.sim.timing_only): reference update rates and
delays, agreement with the full engine, bad compute times."""

from __future__ import annotations

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.sim import SimulatedPool, simulate_timing
from clipasync.timing import random_times, two_speed
from clipasync.transforms import scale


@pytest.mark.parametrize("D", [1, 2, 4, 8, 16])
def test_two_speed_reference_values(D):
    # 8 workers at time 1, 8 at D: Σ 1/τ_i = 8 + 8/D updates per time unit. Each
    # update is seen by the 15 other jobs in flight: mean delay n − 1 = 15. A slow
    # job spans D time units, i.e. D(8 + 8/D) = 8D + 8 updates of which its own is
    # not counted: mean delay 8D + 7.
    s = simulate_timing(two_speed(8, 8, D), 200_000)
    assert s.updates_per_time == pytest.approx(8 + 8 / D, rel=1e-3)
    assert s.mean_delay() == pytest.approx(15, abs=0.02)
    assert s.mean_delay(worker=15) == pytest.approx(8 * D + 7, abs=0.05)
    assert s.mean_delay(worker=0) == pytest.approx((8 + 8 / D) - 1, abs=0.05)


def test_full_engine_matches_timing_only_path():
    # The fast path and SimulatedPool + engine must produce the same delays.
    for timing in (two_speed(8, 8, 4), random_times("lognormal", 1.0, 7, sigma=1.0)):
        s = simulate_timing(timing, 5000, seed=11)
        pool = SimulatedPool(timing, None, seed=11)
        res = run(
            AsyncSGD(scale(0.1)),
            pool,
            np.zeros(2),
            stop=StopRule(max_arrivals=5000),
            rng=np.random.default_rng(0),
        )
        a = res.recorder.arrival_arrays()
        np.testing.assert_array_equal(a["delay"], s.delays)
        np.testing.assert_array_equal(a["worker"], s.workers)
        np.testing.assert_array_equal(a["time"], s.times)


class _BadStationary:
    """A stationary model that draws a zero compute time for worker 1."""

    num_workers = 2
    stationary = True

    def sample(self, worker, now, rng):
        return float(self.sample_block(worker, rng, 1)[0])

    def sample_block(self, worker, rng, size):
        out = rng.exponential(1.0, size)
        if worker == 1:
            out[size // 2] = 0.0
        return out

    def mean_times(self):
        return np.ones(2)


def test_vectorised_path_rejects_non_positive_times():
    with pytest.raises(ConfigError, match=r"positive and finite.*worker 1"):
        simulate_timing(_BadStationary(), 1000)  # type: ignore[arg-type]
