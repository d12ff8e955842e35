"""The simulator's tie-break option: start order (default) or worker index."""

from __future__ import annotations

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.experiments import validate_config
from clipasync.experiments.execute import execute
from clipasync.experiments.grid import expand
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.rennala import Rennala
from clipasync.sim import SimulatedPool, simulate_timing
from clipasync.timing import FixedTimes
from clipasync.transforms import scale
from tests.conftest import diag_quadratic_grad, tiny_experiment


def _arrivals(
    tie_break: str, times: tuple[float, ...] = (1.0, 1.5), max_time: float = 7.5
) -> dict[str, np.ndarray]:
    """The arrival table of Rennala (γ = ½, B = 2) on fixed ``times`` up to
    ``max_time``, with the simulator's ``tie_break``."""
    pool = SimulatedPool(FixedTimes(times), diag_quadratic_grad, 0, tie_break)  # type: ignore[arg-type]
    res = run(
        Rennala(scale(0.5), batch_size=2),
        pool,
        np.ones(2),
        stop=StopRule(max_time=max_time),
        rng=np.random.default_rng(0),
    )
    return res.recorder.arrival_arrays()


def test_worker_index_tie_break_reorders_only_the_ties():
    # Rennala, times (1, 1.5), B = 2: at t = 3 the jobs of w1 (started 1.5) and w0
    # (started 2) finish together. By start order w1 lands first and w0 completes
    # the batch; by worker index w0 lands first and w1 completes it.
    start, worker = _arrivals("start"), _arrivals("worker")
    assert start["time"].tolist()[:5] == [1.0, 1.5, 2.0, 3.0, 3.0]
    assert start["worker"].tolist()[:5] == [0, 1, 0, 1, 0]
    assert worker["worker"].tolist()[:5] == [0, 1, 0, 0, 1]
    # The arrivals before the first tie are the same.
    for col, a in start.items():
        np.testing.assert_array_equal(a[:3], worker[col][:3], err_msg=col)
    # Both orders step at 1.5, 3, 5 and 7 here (hand-derived in test_fidelity).
    for a in (start, worker):
        assert a["time"][a["applied"]].tolist() == [1.5, 3.0, 5.0, 7.0]


def test_without_ties_the_option_changes_nothing():
    times = (1.0, 1.7, 2.9)
    a, b = _arrivals("start", times, 4.0), _arrivals("worker", times, 4.0)
    for col in a:
        np.testing.assert_array_equal(a[col], b[col], err_msg=col)


def test_bad_tie_break_is_one_clear_error():
    with pytest.raises(ConfigError, match="tie_break must be 'start' or 'worker'"):
        SimulatedPool(FixedTimes((1.0,)), None, 0, "index")  # type: ignore[arg-type]
    raw = tiny_experiment(
        {"r": {"policy": "rennala", "stepsize": 0.1, "batch_size": 2}}
    )
    raw["timing"]["tie_break"] = "index"
    with pytest.raises(ConfigError, match=r"timing\.tie_break"):
        validate_config(raw)


def test_yaml_tie_break_reaches_the_pool_and_default_keeps_run_ids():
    methods = {"r": {"policy": "rennala", "stepsize": 0.1, "batch_size": 2}}
    raw = tiny_experiment(methods)
    raw["timing"] = {"kind": "fixed", "times": [1.0, 1.5]}
    (plain,) = expand(validate_config(raw))
    assert "tie_break" not in plain.timing
    raw["timing"]["tie_break"] = "start"
    (start,) = expand(validate_config(raw))
    raw["timing"]["tie_break"] = "worker"
    (worker,) = expand(validate_config(raw))
    assert worker.run_id != plain.run_id
    a, b, c = execute(plain), execute(start), execute(worker)
    np.testing.assert_array_equal(a.arrivals["worker"], b.arrivals["worker"])
    assert a.arrivals["worker"].tolist() != c.arrivals["worker"].tolist()
    np.testing.assert_array_equal(a.arrivals["time"], c.arrivals["time"])


def test_timing_only_simulation_breaks_ties_the_same_way():
    # Algorithm 1 (every arrival applied): the timing-only event loop gives the
    # delays of a full run, under either tie-break.
    timing = FixedTimes((1.0, 1.0, 2.0, 0.5))
    for tie in ("start", "worker"):
        summary = simulate_timing(timing, 60, 0, tie)  # type: ignore[arg-type]
        pool = SimulatedPool(timing, None, 0, tie)  # type: ignore[arg-type]
        res = run(
            AsyncSGD(scale(0.1)),
            pool,
            np.ones(2),
            stop=StopRule(max_arrivals=60),
            rng=np.random.default_rng(0),
        )
        a = res.recorder.arrival_arrays()
        np.testing.assert_array_equal(summary.workers, a["worker"])
        np.testing.assert_array_equal(summary.delays, a["delay"])
    start = simulate_timing(timing, 60, 0, "start")
    worker = simulate_timing(timing, 60, 0, "worker")
    assert start.workers.tolist() != worker.workers.tolist()
