"""Resumable runs (clipasync.runtime.driver): run_resumable on the simulator and the
local pool continues versions, records and job ids; a resumed driver re-dispatches
through each policy's own restart rule."""

from __future__ import annotations

import numpy as np
import pytest

from clipasync.checkpoint import load_checkpoint
from clipasync.engine import StopRule
from clipasync.errors import ConfigError
from clipasync.policies import AsyncSGD, FedBuff, SyncMinibatch
from clipasync.policies.async_sgd import AsyncState
from clipasync.problems.local_training import local_sgd_task
from clipasync.runtime import LocalPool
from clipasync.runtime.driver import checkpoint_streams, run_resumable
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import chain, clip_by_norm, scale, scale_by_delay
from tests.conftest import (
    HeteroQuadratic,
    centers,
    noisy_quadratic_grad,
    run_resumable_and_close,
)

POLICIES = {
    "clipped": AsyncSGD(chain(clip_by_norm(1.0), scale(0.1)), assign="random"),
    "delay": AsyncSGD(scale_by_delay(0.1)),
    "minibatch": SyncMinibatch(scale(0.1)),
}


def test_resume_on_the_simulator_continues_versions_and_records(tmp_path):
    timing = FixedTimes((1.0, 1.5, 2.5))
    policy = POLICIES["clipped"]
    stop = StopRule(max_updates=40)

    def drive(policy, stop, seed, **kw):
        # Each call is a new driver process: a fresh pool, same checkpoint dir.
        return run_resumable(
            policy,
            SimulatedPool(timing, noisy_quadratic_grad, 4),
            np.ones(4),
            stop=stop,
            rng=np.random.default_rng(seed),
            checkpoint_dir=tmp_path,
            checkpoint_every=10,
            **kw,
        )

    # A first driver checkpoints every 10 updates and "dies" after 25 updates.
    part = drive(policy, StopRule(max_updates=25), 0, config={"name": "demo"})
    assert part.version == 25
    ck = load_checkpoint(tmp_path)
    assert ck.version == 25 and ck.config == {"name": "demo"}
    # A different rng seed on resume: the policy's stream comes from the checkpoint.
    res = drive(policy, stop, 99, resume=True)
    assert res.version == 40 and res.counts["applied"] == 40
    rows = res.recorder.arrival_arrays()
    assert rows["version"].tolist() == list(range(40))  # versions continue
    assert np.all(np.diff(rows["time"]) >= 0)
    assert len(set(rows["job"].tolist())) == 40  # job ids continue
    # Resuming a finished run returns at once.
    again = drive(policy, stop, 0, resume=True)
    assert again.version == 40
    np.testing.assert_array_equal(again.params, res.params)
    with pytest.raises(ConfigError, match="policy"):
        drive(POLICIES["delay"], stop, 0, resume=True)


def test_resume_with_local_pool_streams(tmp_path):
    policy = POLICIES["minibatch"]
    kw = dict(timing=FixedTimes((1.0, 2.0)), time_unit_s=0.002, seed=3)
    ck = dict(checkpoint_dir=tmp_path, checkpoint_every=2)
    run_resumable_and_close(
        LocalPool(noisy_quadratic_grad, **kw),
        policy,
        np.ones(2),
        StopRule(max_updates=6),
        **ck,
    )
    streams = checkpoint_streams(tmp_path)
    assert streams is not None and len(streams) == 2
    res = run_resumable_and_close(
        LocalPool(noisy_quadratic_grad, streams=streams, **kw),
        policy,
        np.ones(2),
        StopRule(max_updates=12),
        resume=True,
        **ck,
    )
    assert res.version == 12


class _Recording(SimulatedPool):
    """A simulator that remembers every submission as (worker, version, x)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.submitted = []

    def submit(self, worker, x, version):
        self.submitted.append((worker, version, None if x is None else x.copy()))
        return super().submit(worker, x, version)


def test_resume_mid_round_reasks_only_the_missing_minibatch_workers(tmp_path):
    # Times (1, 2, 3): the round at x0 ends at t=3 (version 1); w0's gradient at x1
    # arrives at t=4 and the run stops (4 arrivals). The resumed driver lost the jobs
    # of w1 and w2 at x1: only they get new jobs, and their two gradients complete
    # the round that w0's checkpointed gradient started.
    policy = POLICIES["minibatch"]
    timing = FixedTimes((1.0, 2.0, 3.0))
    kw = dict(checkpoint_dir=tmp_path, checkpoint_every=1, rng=np.random.default_rng(0))
    first = run_resumable(
        policy,
        SimulatedPool(timing, noisy_quadratic_grad, 4),
        np.ones(2),
        stop=StopRule(max_arrivals=4),
        **kw,
    )
    assert first.version == 1 and load_checkpoint(tmp_path).state.waiting == (0,)
    pool = _Recording(timing, noisy_quadratic_grad, 4)
    res = run_resumable(
        policy, pool, np.ones(2), stop=StopRule(max_updates=2), resume=True, **kw
    )
    assert [(w, v) for w, v, _ in pool.submitted[:2]] == [(1, 1), (2, 1)]
    assert res.version == 2 and res.counts["arrivals"] == 4 + 2


class _RestartAtZero:
    """AsyncSGD whose own restart rule moves the iterate to 0 (a policy-defined rule
    the driver must apply without knowing the policy's type)."""

    def __init__(self):
        self.inner = AsyncSGD(scale(0.1))
        self.name = "restart_at_zero"

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def restart(self, state):
        return AsyncState(
            np.zeros_like(state.x),
            state.version,
            state.transform_state,
            state.num_workers,
            state.rng,
        )


def test_the_driver_resumes_through_the_policys_restart(tmp_path):
    timing = FixedTimes((1.0, 1.5))
    kw = dict(checkpoint_dir=tmp_path, checkpoint_every=3, rng=np.random.default_rng(0))
    policy = _RestartAtZero()
    run_resumable(
        policy,
        SimulatedPool(timing, noisy_quadratic_grad, 1),
        np.ones(3),
        stop=StopRule(max_updates=6),
        **kw,
    )
    pool = _Recording(timing, noisy_quadratic_grad, 1)
    run_resumable(
        policy, pool, np.ones(3), stop=StopRule(max_updates=9), resume=True, **kw
    )
    assert [(w, v) for w, v, _ in pool.submitted[:2]] == [(0, 6), (1, 6)]
    for _, _, x in pool.submitted[:2]:
        np.testing.assert_array_equal(x, np.zeros(3))


def test_a_resumed_federated_run_keeps_the_optional_columns(tmp_path):
    # FedBuff reports each client's delta norm and staleness weight; the records of
    # a resumable run, before and after the resume, keep both columns.
    task = local_sgd_task(HeteroQuadratic(centers(3)), 2, 0.1)

    def drive(updates, **kw):
        return run_resumable(
            FedBuff(2, scale(0.5)),
            SimulatedPool(FixedTimes((1.0, 2.0, 3.0)), task, 0),
            np.zeros(3),
            stop=StopRule(max_updates=updates),
            rng=np.random.default_rng(0),
            checkpoint_dir=tmp_path,
            checkpoint_every=2,
            **kw,
        )

    first = drive(4).recorder.arrival_arrays()
    res = drive(8, resume=True).recorder.arrival_arrays()
    n = len(first["time"])
    assert len(res["time"]) > n
    for name in ("delta_norm", "staleness_weight"):
        assert np.all(np.isfinite(first[name])) and np.all(np.isfinite(res[name]))
        np.testing.assert_array_equal(res[name][:n], first[name])
    assert np.all(res["staleness_weight"] == 1.0)  # constant staleness
