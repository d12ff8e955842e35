"""The arrival recorder (clipasync.recorder): federated columns only when reported."""

from __future__ import annotations

import numpy as np

from clipasync.engine import StopRule, run
from clipasync.policies.rennala import Rennala
from clipasync.recorder import ARRIVAL_COLUMNS, CANCELLED, Recorder
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import scale
from clipasync.types import Arrival, Reply
from tests.conftest import diag_quadratic_grad


def test_recorder_adds_federated_columns_only_when_reported() -> None:
    rec = Recorder()
    arrival = Arrival(0, 0, 0, None, 1.0, 1.0)
    rec.record_arrival(arrival, 0, Reply(applied=True))
    assert tuple(rec.arrival_arrays()) == ARRIVAL_COLUMNS
    rec.record_arrival(arrival, 1, Reply(applied=False, info={"delta_norm": 2.0}))
    rec.record_arrival(arrival, 1, Reply(applied=True))
    cols = rec.arrival_arrays()
    assert tuple(cols)[: len(ARRIVAL_COLUMNS)] == ARRIVAL_COLUMNS
    assert np.array_equal(cols["delta_norm"], [np.nan, 2.0, np.nan], equal_nan=True)
    assert "mixing" not in cols


def test_cancellations_are_recorded_per_event():
    # Rennala with cancelling, times (1, 1.5), B = 2 (hand-derived in
    # tests/policies/test_fidelity.py): every step (arrival rows 1, 3, 5, ...)
    # cancels w0's job begun half a unit before: jobs 2, 4, 6, ...
    def go(cancel: bool):
        pool = SimulatedPool(FixedTimes((1.0, 1.5)), diag_quadratic_grad, seed=0)
        return run(
            Rennala(scale(0.5), batch_size=2, cancel_stale=cancel),
            pool,
            np.ones(2),
            stop=StopRule(max_time=4.5),
            rng=np.random.default_rng(0),
        )

    res = go(True)
    c = res.recorder.cancellation_arrays()
    assert c["arrival"].tolist() == [1, 3, 5]
    assert c["time"].tolist() == [1.5, 3.0, 4.5]
    assert c["worker"].tolist() == [0, 0, 0]
    a = res.recorder.arrival_arrays()
    assert a["cancelled"].tolist() == [0, 1, 0, 1, 0, 1]
    assert a["applied"].tolist() == [False, True] * 3
    # The cancelled jobs never arrive, and each was submitted to w0 at the step
    # before (job ids run in submission order).
    assert not set(c["job"].tolist()) & set(a["job"].tolist())
    assert res.counts["cancelled"] == len(c["job"]) == 3
    # A run that never cancels keeps exactly the fixed (and reported) columns.
    plain = go(False).recorder
    assert CANCELLED not in plain.arrivals
    assert all(len(col) == 0 for col in plain.cancellations.values())
