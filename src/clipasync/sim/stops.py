"""One configuration's evaluations, stop rule, target and divergence check in a
batched run (:mod:`clipasync.sim.batched`, :mod:`clipasync.sim.columns`).

:class:`ColumnStops` applies, per configuration, the rules of
:func:`clipasync.engine.run`: the model is piecewise constant between arrivals, so
the evaluations due before an arrival at time t use the model after every earlier
arrival; a target (with ``confirm``) or a divergence stops the configuration at an
evaluation, a time budget at the first arrival past it, and an update or arrival
budget at the arrival that reaches it, followed by a final evaluation at the stop
time. A subclass says where the configuration's iterate, version and arrival count
live.
"""

from __future__ import annotations

import math

from clipasync.engine import Evaluate, RunResult, StopReason, StopRule
from clipasync.errors import ConfigError
from clipasync.recorder import Recorder
from clipasync.types import Vector


class ColumnStops:
    """One configuration's evaluations, stop rule, target and divergence check (those
    of :func:`clipasync.engine.run`, per configuration); a subclass says where its
    iterate, version and arrival count live."""

    def __init__(
        self,
        index: int,
        stop: StopRule,
        evaluate: Evaluate | None,
        eval_every: float | None,
        recorder: Recorder,
    ) -> None:
        if stop.target is not None and evaluate is None:
            raise ConfigError("a target needs an evaluate function")
        if eval_every is not None and not (eval_every > 0):
            raise ConfigError(f"eval_every must be positive, got {eval_every}")
        self.index = index
        self.stop, self.evaluate, self.eval_every = stop, evaluate, eval_every
        self.rec = recorder
        self.max_time = math.inf if stop.max_time is None else stop.max_time
        self.max_updates = math.inf if stop.max_updates is None else stop.max_updates
        self.max_arrivals = math.inf if stop.max_arrivals is None else stop.max_arrivals
        self.confirm = stop.target.confirm if stop.target is not None else 1
        self.counts = dict.fromkeys(
            ("arrivals", "applied", "discarded", "skipped", "cancelled"), 0
        )
        self.initial_loss: float | None = None
        self.time_to_target: float | None = None
        self.robust_hit: float | None = None
        self.streak, self.streak_start = 0, 0.0
        self.reason: StopReason | None = None
        self.now = 0.0
        self.next_eval = math.inf

    def start_evals(self) -> None:
        if self.evaluate is not None:
            self.reason = self.do_eval(0.0)
            self.next_eval = (
                self.eval_every if self.eval_every is not None else math.inf
            )

    def do_eval(self, t: float) -> StopReason | None:
        assert self.evaluate is not None
        metrics = self.evaluate(self.params())
        self.rec.record_eval(t, self.version(), metrics, self.arrivals())
        loss = metrics.get("loss", 0.0)
        if self.initial_loss is None:
            self.initial_loss = loss
        if not math.isfinite(loss) or (
            self.initial_loss > 0
            and loss > self.stop.diverge_factor * self.initial_loss
        ):
            return "diverged"
        target = self.stop.target
        if target is not None:
            if not target.reached(metrics):
                self.streak = 0
                return None
            if self.time_to_target is None:
                self.time_to_target = t
            if self.streak == 0:
                self.streak_start = t
            self.streak += 1
            if self.streak >= self.confirm:
                self.robust_hit = self.streak_start
                return "target"
        return None

    def before(self, t: float) -> bool:
        """Evaluate up to arrival time ``t``; return whether the column goes on."""
        if self.next_eval <= t:
            while self.next_eval <= min(t, self.max_time) and self.reason is None:
                self.reason = self.do_eval(self.next_eval)
                self.now = self.next_eval
                self.next_eval += self.eval_every  # type: ignore[operator]
            if self.reason is not None:
                return False
        if t > self.max_time:
            self.reason, self.now = "max_time", self.max_time
            return False
        self.now = t
        return True

    def result(self) -> RunResult:
        assert self.reason is not None
        if self.evaluate is not None and self.reason in (
            "max_time",
            "max_updates",
            "max_arrivals",
            "exhausted",
        ):
            last = self.rec.evals[-1]["time"] if self.rec.evals else -1.0
            if self.now > last and self.do_eval(self.now) == "target":
                self.reason = "target"
        return RunResult(
            params=self.params(),
            version=self.version(),
            time=self.now,
            stop_reason=self.reason,
            time_to_target=self.time_to_target,
            counts=self.final_counts(),
            recorder=self.rec,
            robust_hit=self.robust_hit,
        )

    def params(self) -> Vector:
        raise NotImplementedError

    def version(self) -> int:
        raise NotImplementedError

    def arrivals(self) -> int:
        return self.counts["arrivals"]

    def final_counts(self) -> dict[str, int]:
        return dict(self.counts)
