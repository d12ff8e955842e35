"""The arrival recorder (clipasync.recorder): federated columns only when reported."""

from __future__ import annotations

import numpy as np

from clipasync.recorder import ARRIVAL_COLUMNS, Recorder
from clipasync.types import Arrival, Reply


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
