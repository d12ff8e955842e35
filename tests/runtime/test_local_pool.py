"""LocalPool (threads, wall clock) ≡ SimulatedPool (virtual clock) for every policy.

With scripted compute times far enough apart that the wall-clock order of events is
unambiguous, both pools deliver the same arrivals in the same order from the same
per-worker oracle streams, so every policy produces bit-identical iterates. This is
the test that proves the algorithm layer is shared: the server loop of Erickson &
Johansson (2026, arXiv 2606.13287, Algorithms 1–2) runs unchanged on both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies import AsyncSGD, Rennala, Ringmaster, SyncMinibatch
from clipasync.runtime import LocalPool
from clipasync.runtime._oracle import OracleWorker, check_worker, pool_size
from clipasync.seeding import Stream, stream
from clipasync.timing import TraceTimes
from clipasync.transforms import chain, clip_by_norm, scale, scale_by_delay
from tests.conftest import noisy_quadratic_grad, run_and_close
from tests.scripted import WatchedPool, scripted_trace

UNIT_S = 0.001  # one trace unit = 1 ms: jobs take 40–120 ms
MIN_GAP = 16.0  # ms between any two events of the simulated schedule
NUM_WORKERS = 3
ARRIVALS = 16

POLICIES: dict[str, Callable[[], Any]] = {
    "vanilla": lambda: AsyncSGD(scale(0.1)),
    "clipped_random": lambda: AsyncSGD(
        chain(clip_by_norm(0.5), scale(0.2)), assign="random"
    ),
    "delay_adaptive": lambda: AsyncSGD(scale_by_delay(0.1)),
    "ringmaster": lambda: Ringmaster(scale(0.1), max_delay=2),
    "ringmaster_cancel": lambda: Ringmaster(scale(0.1), max_delay=2, cancel_stale=True),
    "rennala": lambda: Rennala(scale(0.1), batch_size=2, cancel_stale=True),
    "rennala_no_cancel": lambda: Rennala(scale(0.1), batch_size=2, cancel_stale=False),
    "minibatch": lambda: SyncMinibatch(scale(0.1)),
}


def _simulate(policy: Any, timing: TraceTimes, seed: int) -> tuple[Any, WatchedPool]:
    pool = WatchedPool(timing, noisy_quadratic_grad, seed)
    res = run(
        policy,
        pool,
        np.ones(2),
        stop=StopRule(max_arrivals=ARRIVALS),
        rng=np.random.default_rng(seed),
    )
    return res, pool


def _scripted(name: str) -> tuple[TraceTimes, int]:
    """A trace (and seed) whose simulated schedule has no near-ties."""
    return scripted_trace(
        lambda timing, seed: _simulate(POLICIES[name](), timing, seed),
        num_workers=NUM_WORKERS,
        arrivals=ARRIVALS,
        min_gap=MIN_GAP,
    )


def _real(name: str, timing: TraceTimes, seed: int) -> Any:
    return run_and_close(
        LocalPool(noisy_quadratic_grad, timing=timing, time_unit_s=UNIT_S, seed=seed),
        POLICIES[name](),
        np.ones(2),
        StopRule(max_arrivals=ARRIVALS),
        seed=seed,
    )


@pytest.mark.parametrize("name", list(POLICIES))
def test_local_pool_matches_simulator_bit_for_bit(name):
    timing, seed = _scripted(name)
    sim, _ = _simulate(POLICIES[name](), timing, seed)
    real = _real(name, timing, seed)
    a, b = sim.recorder.arrival_arrays(), real.recorder.arrival_arrays()
    if not np.array_equal(a["worker"], b["worker"]):
        # Wall-clock order can only differ from the script when the machine is so
        # loaded that thread wake-ups lag by ~MIN_GAP; one retry tells that apart
        # from a logic error (which fails every time).
        real = _real(name, timing, seed)
        b = real.recorder.arrival_arrays()
    for col in ("worker", "job", "version", "delay", "applied", "discarded"):
        np.testing.assert_array_equal(a[col], b[col], err_msg=col)
    assert real.counts == sim.counts
    np.testing.assert_array_equal(real.params, sim.params)  # bit-identical
    # Wall clock tracks the scripted schedule (ms → s) up to thread latency.
    np.testing.assert_allclose(b["time"], a["time"] * UNIT_S, atol=0.1)
    assert np.all(b["compute_time"] >= a["compute_time"] * UNIT_S * 0.999)


def test_local_pool_without_timing_and_exhaustion():
    pool = LocalPool(noisy_quadratic_grad, num_workers=2, seed=1)
    res = run_and_close(
        pool, AsyncSGD(scale(0.1)), np.ones(3), StopRule(max_updates=50)
    )
    assert res.version == 50
    trace = TraceTimes(((1.0, 1.0), (1.0,)))
    pool = LocalPool(noisy_quadratic_grad, timing=trace, time_unit_s=0.001, seed=1)
    res = run_and_close(
        pool, AsyncSGD(scale(0.1)), np.ones(3), StopRule(max_updates=50)
    )
    assert res.stop_reason == "exhausted"
    assert res.version == 3


def test_local_pool_surfaces_task_errors_and_validates():
    def broken(worker: int, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise RuntimeError("boom")

    pool = LocalPool(broken, num_workers=1)
    try:
        pool.submit(0, np.zeros(1), 0)
        with pytest.raises(RuntimeError, match="boom"):
            pool.next_arrival()
    finally:
        pool.close()
    with pytest.raises(ConfigError, match="time_unit_s"):
        LocalPool(broken, num_workers=1, time_unit_s=0)
    with pytest.raises(ConfigError, match="disagrees"):
        LocalPool(broken, num_workers=2, timing=TraceTimes(((1.0,),)))


def test_trace_export_replays_and_compares(tmp_path):
    from clipasync.runtime.trace import compare_sim_to_real, write_trace
    from clipasync.timing import FixedTimes

    timing = FixedTimes((20.0, 40.0))
    pool = LocalPool(noisy_quadratic_grad, timing=timing, time_unit_s=0.001, seed=0)
    res = run_and_close(
        pool, AsyncSGD(scale(0.1)), np.ones(2), StopRule(max_updates=15)
    )
    path = write_trace(res.recorder, tmp_path / "trace.csv", time_unit_s=0.001)
    trace = TraceTimes.from_csv(path)
    assert trace.num_workers == 2
    np.testing.assert_allclose(trace.mean_times(), [20.0, 40.0], rtol=0.3)
    cmp = compare_sim_to_real(res.recorder, timing, 0.001)
    assert 0.6 < cmp.rate_ratio <= 1.05
    assert cmp.quantiles["mean"][0] == pytest.approx(1.0, abs=0.2)
    assert cmp.wasserstein < 1.0


def test_one_job_on_a_worker_sleeps_then_computes_and_a_cancel_skips_the_oracle():
    # Times (30 ms, 10 ms) on worker 0 of a two-job trace; the oracle is the noisy
    # quadratic, whose draws come from stream(seed, ORACLE, 0).
    trace = TraceTimes(((30.0, 10.0),))
    worker = OracleWorker(noisy_quadratic_grad, 0, 5, trace)
    expected = np.ones(2) + stream(5, Stream.ORACLE, 0).standard_normal(2)
    out = worker.run_job(np.ones(2), 0.0, threading.Event(), 0.001)
    assert out.status == "ok" and out.seconds >= 0.030
    np.testing.assert_array_equal(out.payload, expected)
    # A job cancelled during its sleep has drawn its time but never the oracle.
    before = worker.streams()
    cancelled = threading.Event()
    cancelled.set()
    out = worker.run_job(np.ones(2), 0.0, cancelled, 0.001)
    assert (out.status, out.payload, out.seconds) == ("cancelled", None, 0.0)
    assert worker.streams() == {**before, "timing_jobs": 2}
    # The trace has no third job: the worker is exhausted for good.
    for _ in range(2):
        out = worker.run_job(np.ones(2), 0.0, threading.Event(), 0.001)
        assert out.status == "exhausted" and worker.exhausted
    assert worker.streams()["timing_jobs"] == 2


def test_pool_arguments_are_checked_once_for_every_real_pool():
    assert pool_size(3, None, 1.0, None) == 3
    assert pool_size(None, TraceTimes(((1.0,), (1.0,))), 0.5, [None, None]) == 2
    for args, match in [
        ((None, None, 1.0, None), "num_workers must be an integer"),
        ((0, None, 1.0, None), "num_workers must be an integer"),
        ((3, TraceTimes(((1.0,),)), 1.0, None), "disagrees"),
        ((2, None, 0.0, None), "time_unit_s"),
        ((2, None, 1.0, [None]), "streams must list 2"),
    ]:
        with pytest.raises(ConfigError, match=match):
            pool_size(*args)
    check_worker(1, 2)
    with pytest.raises(ConfigError, match=r"\[0, 2\)"):
        check_worker(2, 2)
