"""A cancellation from an earlier run on a reused Ray actor
(:class:`~clipasync.runtime.ray_actor._RayOracle`, run here as a plain object, no
Ray) never cancels the next run's job of the same id: job ids restart at 0 with
every run, and a cancel travels in its own concurrency group, so it may be
executed after the actor's reset (seen in CI: the job then came back "cancelled"
with no gradient and was recorded as an update)."""

from __future__ import annotations

from typing import Any

import numpy as np

from clipasync.runtime.ray_actor import _RayOracle


def _factory() -> Any:
    def task(worker: int, x: Any, rng: np.random.Generator) -> Any:
        return np.asarray(x, dtype=float) * 2.0

    return task


def _args(epoch: int) -> tuple[Any, ...]:
    return (_factory, (0,), 0, None, 0.01, (None,), 0.0, False, 0, epoch)


def test_a_stale_cancel_after_a_reset_is_ignored() -> None:
    actor = _RayOracle(*_args(epoch=1))
    actor.cancel(3, 0, 1)  # run 1 cancels its job 3 before it started
    assert actor.run(3, 0, np.ones(2))[4] == "cancelled"
    actor.reset(*_args(epoch=2))
    actor.cancel(5, 0, 1)  # run 1's cancel of its job 5, executed late
    payload, job, _, _, status, _ = actor.run(5, 0, np.ones(2))
    assert (job, status) == (5, "ok")
    np.testing.assert_array_equal(payload, [2.0, 2.0])
    actor.cancel(6, 0, 2)  # run 2's own cancellation still works
    assert actor.run(6, 0, np.ones(2))[4] == "cancelled"
