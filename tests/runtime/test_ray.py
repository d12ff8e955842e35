"""RayPool on one shared local Ray session: every policy, a killed worker, resume."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from clipasync.checkpoint import load_checkpoint  # noqa: E402
from clipasync.engine import StopRule, run  # noqa: E402
from clipasync.errors import ConfigError  # noqa: E402
from clipasync.policies import AsyncSGD, Rennala, Ringmaster, SyncMinibatch  # noqa: E402
from clipasync.runtime import ProblemTask, RayPool, start_ray  # noqa: E402
from clipasync.runtime.driver import checkpoint_streams  # noqa: E402
from clipasync.runtime.ray_session import INLINE_BYTES, inline_bytes  # noqa: E402
from clipasync.timing import FixedTimes, TraceTimes  # noqa: E402
from clipasync.transforms import chain, clip_by_norm, scale  # noqa: E402
from tests.conftest import run_and_close, run_resumable_and_close  # noqa: E402
from tests.scripted import WatchedPool, scripted_trace  # noqa: E402

pytestmark = pytest.mark.ray

TASK = ProblemTask.of("least_squares", num_samples=200, dim=8, batch_size=16)
TIMING = FixedTimes((1.0, 2.0))
UNIT_S = 0.01


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    start_ray(num_cpus=2)  # ray.init costs 5–8 s: one session for the module
    yield
    ray.shutdown()


def _pool(**kw):
    return RayPool(TASK, timing=TIMING, time_unit_s=UNIT_S, seed=0, **kw)


@pytest.mark.parametrize(
    "policy",
    [
        AsyncSGD(chain(clip_by_norm(1.0), scale(0.5)), assign="random"),
        Ringmaster(scale(0.5), max_delay=2, cancel_stale=True),
        Rennala(scale(0.5), batch_size=2),
        SyncMinibatch(scale(0.5)),
    ],
    ids=lambda p: p.name,
)
def test_every_policy_runs_on_ray(policy):
    res = run_and_close(_pool(), policy, np.zeros(8), StopRule(max_updates=8))
    assert res.version == 8
    rows = res.recorder.arrival_arrays()
    assert len(set(rows["job"].tolist())) == len(rows["job"])  # never applied twice
    assert np.all(np.diff(rows["time"]) >= 0)
    # Measured compute time includes the injected sleep but not queueing; it is in
    # time units (one unit = UNIT_S seconds), as the timing model and the simulator.
    expected = np.asarray(TIMING.times)[rows["worker"]]
    assert np.all(rows["compute_time"] >= expected * 0.99)
    assert np.all(rows["compute_time"] < expected + 0.5 / UNIT_S)
    assert rows["time"][-1] >= 8 / 1.5 * 0.99  # 8 updates at rate 1 + 1/2 per unit


def test_killed_worker_is_replaced_and_the_run_completes():
    pool = _pool()
    victim = pool.actors[1]
    killer = threading.Timer(0.15, lambda: ray.kill(victim))
    killer.start()
    try:
        res = run(
            AsyncSGD(scale(0.5)),
            pool,
            np.zeros(8),
            stop=StopRule(max_updates=40),
            rng=np.random.default_rng(0),
        )
    finally:
        killer.cancel()
        pool.close()
    assert res.version == 40
    assert pool.failures == 1
    assert pool.actors[1] is not victim


def test_resumed_run_continues_from_the_checkpoint(tmp_path):
    policy = AsyncSGD(chain(clip_by_norm(1.0), scale(0.5)))
    ck = dict(checkpoint_dir=tmp_path, checkpoint_every=5)
    # The first driver stops (as if killed) after 12 updates.
    run_resumable_and_close(
        _pool(), policy, np.zeros(8), StopRule(max_updates=12), **ck
    )
    assert load_checkpoint(tmp_path).version == 12
    res = run_resumable_and_close(
        _pool(streams=checkpoint_streams(tmp_path)),
        policy,
        np.zeros(8),
        StopRule(max_updates=25),
        resume=True,
        **ck,
    )
    assert res.version == 25
    rows = res.recorder.arrival_arrays()
    assert rows["version"].tolist() == list(range(25))


def test_cpu_reservation_beyond_the_cluster_is_refused():
    with pytest.raises(ConfigError, match="never be scheduled"):
        _pool(num_cpus_per_worker=64)


def test_no_injected_time_and_start_ray_is_idempotent():
    start_ray()  # already initialised: no-op
    # The local Ray started here passes models and gradients of up to 1 MiB inline.
    assert inline_bytes() == INLINE_BYTES
    pool = RayPool(TASK, num_workers=2, seed=1)
    t0 = time.perf_counter()
    res = run_and_close(
        pool, AsyncSGD(scale(0.5)), np.zeros(8), StopRule(max_updates=20)
    )
    assert res.version == 20
    assert time.perf_counter() - t0 < 10


@dataclass(frozen=True)
class Float32Quadratic:
    """Task factory: g = (x − 1) + N(0, I) noise in float32 (model-scale dtype)."""

    def __call__(self) -> Any:
        def task(worker: int, x: Any, rng: np.random.Generator) -> Any:
            noise = rng.standard_normal(x.shape[0], dtype=np.float32)
            return (x - np.float32(1.0)) + noise

        return task


IN_PLACE_UNIT_S = 0.003  # one trace unit = 3 ms: jobs take 120–480 ms
IN_PLACE_POLICY = AsyncSGD(chain(clip_by_norm(2.0), scale(0.2)))


def _simulate_f32(timing: TraceTimes, seed: int) -> Any:
    pool = WatchedPool(timing, Float32Quadratic()(), seed)
    res = run(
        IN_PLACE_POLICY,
        pool,
        np.zeros(5, dtype=np.float32),
        stop=StopRule(max_arrivals=14),
        rng=np.random.default_rng(seed),
    )
    return res, pool


@pytest.mark.slow
@pytest.mark.parametrize(
    "server", [{"in_place": True}, {"shards": 3}], ids=["in_place", "3_shards"]
)
def test_in_place_and_sharded_servers_match_the_simulator_bit_for_bit(server):
    timing, seed = scripted_trace(
        _simulate_f32, num_workers=3, arrivals=14, min_gap=16.0
    )
    sim, _ = _simulate_f32(timing, seed)

    def real() -> Any:
        pool = RayPool(
            Float32Quadratic(),
            timing=timing,
            time_unit_s=IN_PLACE_UNIT_S,
            seed=seed,
            **server,
        )
        x0 = pool.model(np.zeros(5, dtype=np.float32))
        res = run_and_close(
            pool, IN_PLACE_POLICY, x0, StopRule(max_arrivals=14), seed=seed
        )
        assert res.params is x0  # the driver's buffer (or the shards), in place
        return res

    got = real()
    a, b = sim.recorder.arrival_arrays(), got.recorder.arrival_arrays()
    if not np.array_equal(a["worker"], b["worker"]):  # a wake-up lag: retry once
        got = real()
        b = got.recorder.arrival_arrays()
    for col in ("worker", "job", "version", "delay", "applied", "clipped"):
        np.testing.assert_array_equal(a[col], b[col], err_msg=col)
    assert 0 < a["clipped"].sum() < len(a["clipped"])  # both branches of the clip
    np.testing.assert_array_equal(a["pre_clip_norm"], b["pre_clip_norm"])
    assert np.asarray(got.params).tobytes() == sim.params.tobytes()


def test_a_reset_pool_runs_as_a_fresh_one_without_new_processes():
    def once(pool: RayPool) -> Any:
        return run(
            AsyncSGD(chain(clip_by_norm(1.0), scale(0.5))),
            pool,
            np.zeros(8),
            stop=StopRule(max_updates=10),
            rng=np.random.default_rng(0),
        )

    one = FixedTimes((1.0,))  # one worker: the order of arrivals is fixed
    fresh = RayPool(TASK, timing=one, time_unit_s=UNIT_S, seed=5)
    try:
        want = once(fresh)
    finally:
        fresh.close()
    pool = RayPool(TASK, timing=one, time_unit_s=UNIT_S, seed=1)
    try:
        pids = ray.get([a.ready.remote() for a in pool.actors])
        first = once(pool)  # leaves a job in flight: the reset drains it
        pool.reset(TASK, timing=one, seed=5)
        assert ray.get([a.ready.remote() for a in pool.actors]) == pids
        got = once(pool)
    finally:
        pool.close()
    assert not np.array_equal(first.params, want.params)  # seed 1 differs
    np.testing.assert_array_equal(got.params, want.params)
    assert got.recorder.arrival_arrays()["job"].tolist() == list(range(10))
