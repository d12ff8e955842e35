"""``outputs: {tensorboard: true}`` writes each run's scalars as TensorBoard events."""

from __future__ import annotations

import numpy as np
import pytest

from clipasync.experiments.runner import run_experiment
from clipasync.experiments.schema import validate_config
from clipasync.io import read_columns
from tests.conftest import tiny_experiment

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

METHODS = {"clipped": {"policy": "async_sgd", "stepsize": [0.2], "max_norm": [0.5]}}


def test_scalars_are_written_and_read_back(tmp_path):
    raw = {**tiny_experiment(METHODS), "outputs": {"tensorboard": True}}
    out = run_experiment(validate_config(raw), tmp_path / "out", progress=False)
    (run_dir,) = (out / "runs").iterdir()
    board = out / "tensorboard" / run_dir.name
    acc = EventAccumulator(str(board))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"metric/loss", "delay/p50", "delay/p90", "clip/fraction"} <= tags
    assert {"updates/applied", "updates/discarded"} <= tags
    evals = read_columns(run_dir / "evals.csv")
    loss = acc.Scalars("metric/loss")
    # One point per evaluation, at step = version and timestamp = simulated time.
    assert [e.step for e in loss] == [int(v) for v in evals["version"]]
    assert [e.wall_time for e in loss] == pytest.approx(list(evals["time"]))
    np.testing.assert_allclose([e.value for e in loss], evals["loss"], rtol=1e-6)
    arrivals = read_columns(run_dir / "arrivals.csv.gz")
    applied = acc.Scalars("updates/applied")[-1].value
    # The evaluation at t = 12 sees every arrival strictly before 12 (engine rule).
    assert applied == int(np.sum(arrivals["applied"][arrivals["time"] < 12]))
    assert applied == evals["version"][-1]
    fractions = [e.value for e in acc.Scalars("clip/fraction")]
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_off_by_default(tmp_path):
    out = run_experiment(
        validate_config(tiny_experiment(METHODS)), tmp_path / "out", progress=False
    )
    assert not (out / "tensorboard").exists()
    assert "outputs" not in (out / "config.resolved.yaml").read_text()
