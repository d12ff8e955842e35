"""The embeddable server, driven by threads, retraces the engine bit for bit."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies import AsyncSGD, Ringmaster
from clipasync.runtime import EmbeddedServer
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import chain, clip_by_norm, scale

SEED = 3
TIMES = FixedTimes((1.0, 1.7, 2.9))  # no two arrivals at the same time


def task(worker: int, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """∇f + heavy noise for f(x) = ½‖x − 1‖² (so clipping is active)."""
    del worker
    return x - 1.0 + 3.0 * rng.standard_t(2.0, size=x.shape)


def engine_run(policy):
    pool = SimulatedPool(TIMES, task, SEED)
    res = run(
        policy,
        pool,
        np.zeros(4),
        stop=StopRule(max_arrivals=30),
        rng=stream(SEED, Stream.POLICY),
    )
    return res.params, res.recorder.arrival_arrays()


def threaded_run(policy, script):
    """Workers as threads that pull and push in the engine's order (``script``)."""
    server = EmbeddedServer(policy, np.zeros(4), 3, seed=SEED)
    steps = [("pull", w, (0.0, 0.0)) for w in server.start]
    rows = zip(script["worker"], script["time"], script["compute_time"], strict=True)
    for w, t, c in rows:
        steps += [("push", int(w), (float(t), float(c))), ("pull", int(w), (0, 0))]
    turn = [0]
    cond = threading.Condition()

    def worker(w: int) -> None:
        rng = stream(SEED, Stream.ORACLE, w)  # the simulator's oracle stream of w
        pending: list[tuple[int, np.ndarray]] = []
        for i, (kind, who, t) in enumerate(steps):
            if who != w:
                continue
            with cond:
                cond.wait_for(lambda i=i: turn[0] == i)
            if kind == "pull":
                version, x = server.pull(w)
                pending.append((version, task(w, x, rng)))
            else:
                version, g = pending.pop(0)
                server.push(g, version, w, time=t[0], compute_time=t[1])
            with cond:
                turn[0] += 1
                cond.notify_all()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=10)
    assert turn[0] == len(steps)
    return server, server.recorder.arrival_arrays()


@pytest.mark.parametrize(
    "policy",
    [
        AsyncSGD(chain(clip_by_norm(5.0), scale(0.2))),
        Ringmaster(scale(0.2), max_delay=2),
    ],
    ids=["clipped", "ringmaster"],
)
def test_threads_retrace_the_engine(policy):
    x_engine, rec_engine = engine_run(policy)
    server, rec = threaded_run(policy, rec_engine)
    np.testing.assert_array_equal(server.params(), x_engine)
    assert rec.keys() == rec_engine.keys()
    for name in rec:
        np.testing.assert_array_equal(rec[name], rec_engine[name], err_msg=name)
    assert server.counts["arrivals"] == 30
    assert server.counts["applied"] == int(rec_engine["applied"].sum())
    if isinstance(policy, Ringmaster):
        assert rec["discarded"].any()  # the discards are part of the trajectory
    else:
        assert rec["clipped"].any() and not rec["clipped"].all()


def test_push_checks_its_arguments():
    server = EmbeddedServer(AsyncSGD(scale(0.1)), np.zeros(2), 2)
    with pytest.raises(ConfigError, match=r"grad must have shape \(2,\)"):
        server.push(np.zeros(3), 0, 0)
    with pytest.raises(ConfigError, match=r"version must be in \[0, 0\]"):
        server.push(np.zeros(2), 1, 0)
    with pytest.raises(ConfigError, match=r"worker must be in \[0, 2\)"):
        server.push(np.zeros(2), 0, 2)
    # One plain SGD step: x ← x − γ g.
    server.push(np.array([1.0, -2.0]), 0, 1)
    np.testing.assert_array_equal(server.params(), [-0.1, 0.2])
    assert server.version == 1
