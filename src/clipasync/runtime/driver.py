"""``engine.run`` with atomic checkpoints every N updates, and resume after a crash.

:func:`run_resumable` adds no loop of its own: it wraps the policy (to see each new
state) and the pool (whose ``next_arrival`` is the top of the engine's loop, the one
point where the arrival before has been fully processed: applied, recorded and its
dispatches made) and calls :func:`clipasync.engine.run`. The checkpoint holds the
policy state (with its random stream), the pool's per-worker stream states, counters,
the records so far and the run config (:mod:`clipasync.checkpoint`).

Resume semantics (a real pool loses its in-flight jobs with the driver):

* the policy continues from the checkpointed state: versions, iterate, transform
  state and policy random stream continue exactly;
* the run continues from ``policy.restart(state)`` and dispatches
  ``policy.start`` of that state at the checkpointed model, as at the start of a run
  (each policy decides: a synchronous minibatch round only re-asks the workers whose
  gradient is missing, Ringmaster resets its record of dispatch versions to the
  current version since those jobs are fresh);
* job ids, run time and counters continue from the checkpoint (the new pool's clock
  starts at the checkpoint's time; budgets in ``stop`` are for the whole run);
* a pool built with the checkpoint's stream states (``streams=``, see
  :func:`checkpoint_streams`) continues each worker's oracle and timing streams from
  its last finished job; otherwise streams restart from the seed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from clipasync.checkpoint import (
    Checkpoint,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from clipasync.engine import (
    TIME_LIMITS,
    Evaluate,
    RunResult,
    StopRule,
    WorkerPool,
    run,
)
from clipasync.errors import ConfigError
from clipasync.policies.base import ServerPolicy
from clipasync.recorder import CANCELLED, Recorder
from clipasync.types import Arrival, Reply, Vector

_COUNTS = ("arrivals", "applied", "discarded", "skipped", "cancelled")


def checkpoint_streams(checkpoint_dir: str | os.PathLike[str]) -> list[Any] | None:
    """Return the pool stream states of a checkpoint (to build the resumed pool)."""
    if not has_checkpoint(checkpoint_dir):
        return None
    return load_checkpoint(checkpoint_dir).streams


class _TrackedPolicy:
    """Delegates to ``policy``; remembers the latest state; restores one on init."""

    def __init__(self, policy: ServerPolicy[Any], restored: Any | None) -> None:
        self.policy = policy
        self.name = policy.name
        self.state: Any = None
        self._restored = restored

    def init(self, x0: Vector, num_workers: int, rng: np.random.Generator) -> Any:
        if self._restored is None:
            self.state = self.policy.init(x0, num_workers, rng)
        else:
            self.state = self.policy.restart(self._restored)
        return self.state

    def start(self, state: Any) -> tuple[int, ...]:
        return self.policy.start(state)

    def time_limit(self, worker: int) -> float | None:
        """The policy's time limit of ``worker``'s jobs, if it has any."""
        limit = getattr(self.policy, "time_limit", None)
        return None if limit is None else limit(worker)

    def on_arrival(self, state: Any, arrival: Arrival) -> tuple[Any, Reply]:
        self.state, reply = self.policy.on_arrival(state, arrival)
        return self.state, reply

    def params(self, state: Any) -> Vector:
        return self.policy.params(state)

    def version(self, state: Any) -> int:
        return self.policy.version(state)

    def restart(self, state: Any) -> Any:
        return self.policy.restart(state)

    def to_config(self) -> dict[str, Any]:
        return self.policy.to_config()


class _CheckpointingPool:
    """Delegates to ``pool``; offsets job ids; checkpoints at the loop's top."""

    def __init__(
        self, pool: WorkerPool, first_job: int, before_next: Callable[[], None]
    ) -> None:
        self.pool = pool
        self.num_workers = pool.num_workers
        self.first_job = first_job
        self.next_job = first_job
        self.cancelled = 0
        self.last_time = 0.0
        self._before_next = before_next

    @property
    def supports_time_limits(self) -> bool:
        return bool(getattr(self.pool, TIME_LIMITS, False))

    def submit(
        self, worker: int, x: Vector, version: int, time_limit: float | None = None
    ) -> int:
        if time_limit is None:
            job = self.pool.submit(worker, x, version)
        else:
            job = self.pool.submit(worker, x, version, time_limit=time_limit)  # type: ignore[call-arg]
        job += self.first_job
        self.next_job = max(self.next_job, job + 1)
        return job

    def cancel(self, job: int) -> None:
        self.cancelled += 1
        self.pool.cancel(job - self.first_job)

    def next_arrival(self) -> Arrival:
        self._before_next()
        a = self.pool.next_arrival()
        self.last_time = a.time
        return dataclasses.replace(a, job=a.job + self.first_job)

    def now(self) -> float:
        return self.pool.now()

    def close(self) -> None:
        self.pool.close()


def _merge(base: Recorder, segment: Recorder, dt: float, out: Recorder) -> Recorder:
    out.keep_arrivals = base.keep_arrivals
    old, new_rows, cols = base.arrivals, segment.arrivals, out.arrivals
    # The optional columns (FedBuff's delta_norm, ...) of either part are kept; a
    # part without one has NaN there, as a recorder fills the rows before a column.
    for name in dict.fromkeys([*cols, *old, *new_rows]):
        col = cols.setdefault(name, [])
        col.clear()
        # A part that cancelled nothing has no cancellation count: 0, not unknown.
        fill = 0 if name == CANCELLED else math.nan
        col.extend(old.get(name, [fill] * len(old["time"])))
        new = new_rows.get(name, [fill] * len(new_rows["time"]))
        col.extend([t + dt for t in new] if name == "time" else new)
    out.evals = [*base.evals, *({**e, "time": e["time"] + dt} for e in segment.evals)]
    # The segment's cancellations point at its own rows: shift them past the base's.
    rows = len(old["time"])
    b, s = base.cancellations, segment.cancellations
    out.cancellations = {
        "arrival": [*b["arrival"], *(i + rows for i in s["arrival"])],
        "time": [*b["time"], *(t + dt for t in s["time"])],
        "job": [*b["job"], *s["job"]],
        "worker": [*b["worker"], *s["worker"]],
    }
    return out


def _segment_counts(rec: Recorder, cancelled: int) -> dict[str, int]:
    a = rec.arrivals
    return {
        "arrivals": len(a["time"]),
        "applied": int(sum(bool(v) for v in a["applied"])),
        "discarded": int(sum(bool(v) for v in a["discarded"])),
        "skipped": int(sum(bool(v) for v in a["skipped"])),
        "cancelled": cancelled,
    }


def _remaining(stop: StopRule, ck: Checkpoint) -> StopRule | None:
    left: dict[str, Any] = {}
    for name, used in (
        ("max_time", ck.time),
        ("max_updates", ck.counts["applied"]),
        ("max_arrivals", ck.counts["arrivals"]),
    ):
        budget = getattr(stop, name)
        if budget is not None:
            if budget - used <= 0:
                return None
            left[name] = budget - used
    return dataclasses.replace(stop, **left)


def _normalise(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def run_resumable(
    policy: ServerPolicy[Any],
    pool: WorkerPool,
    x0: Vector,
    *,
    stop: StopRule,
    rng: np.random.Generator,
    evaluate: Evaluate | None = None,
    eval_every: float | None = None,
    checkpoint_dir: str | os.PathLike[str],
    checkpoint_every: int,
    resume: bool = False,
    config: Mapping[str, Any] | None = None,
    recorder: Recorder | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Run like :func:`clipasync.engine.run`, checkpointing every N updates.

    Args:
        policy: The server rule.
        pool: The workers; on resume, build it with ``streams=`` from
            :func:`checkpoint_streams` to continue the workers' random streams.
        x0: Initial iterate (ignored on resume).
        stop: Budgets for the whole run (a resumed run gets what is left).
        rng: The policy's random stream (ignored on resume: it is in the state).
        evaluate: Metrics of a model.
        eval_every: Evaluation cadence (time units of the pool).
        checkpoint_dir: Where checkpoints go.
        checkpoint_every: Checkpoint after every this many applied updates (> 0);
            a last checkpoint is written when the run ends.
        resume: Continue from the checkpoint in ``checkpoint_dir``.
        config: The run's config as plain data, stored in the checkpoint.
        recorder: Receives every row of the run (checkpointed rows included).
        on_progress: As in :func:`clipasync.engine.run`.

    Returns:
        The :class:`RunResult` of the whole run (times, counts and records include
        the part before the checkpoint).

    Raises:
        ConfigError: On a bad ``checkpoint_every``, resuming with no checkpoint, or
            a policy that differs from the checkpointed one.
    """
    if not (isinstance(checkpoint_every, int) and checkpoint_every > 0):
        raise ConfigError(
            f"checkpoint_every must be a positive integer, got {checkpoint_every}"
        )
    ck: Checkpoint | None = None
    if resume:
        ck = load_checkpoint(checkpoint_dir)
        if _normalise(ck.policy) != _normalise(policy.to_config()):
            raise ConfigError(
                f"the checkpoint was written by policy {ck.policy}, not "
                f"{policy.to_config()}"
            )
    base = (
        ck.records
        if ck is not None
        else Recorder(
            keep_arrivals=True if recorder is None else recorder.keep_arrivals
        )
    )
    t_off = ck.time if ck is not None else 0.0
    counts0 = dict(ck.counts) if ck is not None else dict.fromkeys(_COUNTS, 0)
    out = recorder if recorder is not None else Recorder()
    tracked = _TrackedPolicy(policy, None if ck is None else ck.state)
    segment = Recorder(keep_arrivals=True)
    sequence = [ck.sequence if ck is not None else 0]
    last_version = [ck.version if ck is not None else 0]

    def snapshot(now: float | None = None) -> Checkpoint:
        seg = _segment_counts(segment, proxy.cancelled)
        streams = getattr(pool, "stream_states", None)
        sequence[0] += 1
        return Checkpoint(
            state=tracked.state,
            policy=policy.to_config(),
            version=policy.version(tracked.state),
            time=t_off + (proxy.last_time if now is None else now),
            counts={k: counts0[k] + seg[k] for k in _COUNTS},
            next_job=proxy.next_job,
            streams=None if streams is None else streams(),
            records=_merge(base, segment, t_off, Recorder()),
            config=None if config is None else dict(config),
            sequence=sequence[0],
        )

    def maybe_checkpoint() -> None:
        if tracked.state is None:
            return
        version = policy.version(tracked.state)
        if version - last_version[0] >= checkpoint_every:
            save_checkpoint(checkpoint_dir, snapshot())
            last_version[0] = version

    proxy = _CheckpointingPool(
        pool, ck.next_job if ck is not None else 0, maybe_checkpoint
    )
    left = stop if ck is None else _remaining(stop, ck)
    if left is None:  # the budget was spent before the checkpoint
        assert ck is not None
        return RunResult(
            params=policy.params(ck.state),
            version=ck.version,
            time=ck.time,
            stop_reason="max_time"
            if stop.max_time is not None and ck.time >= stop.max_time
            else "max_updates"
            if stop.max_updates is not None and ck.counts["applied"] >= stop.max_updates
            else "max_arrivals",
            time_to_target=None,
            counts=dict(ck.counts),
            recorder=_merge(base, segment, 0.0, out),
        )
    res = run(
        tracked,
        proxy,
        x0,
        stop=left,
        rng=rng,
        evaluate=evaluate,
        eval_every=eval_every,
        recorder=segment,
        on_progress=on_progress,
    )
    save_checkpoint(checkpoint_dir, snapshot(res.time))
    ttt = res.time_to_target
    return RunResult(
        params=res.params,
        version=res.version,
        time=res.time + t_off,
        stop_reason=res.stop_reason,
        time_to_target=None if ttt is None or math.isnan(ttt) else ttt + t_off,
        counts={k: counts0[k] + res.counts[k] for k in _COUNTS},
        recorder=_merge(base, segment, t_off, out),
        robust_hit=None if res.robust_hit is None else res.robust_hit + t_off,
    )
