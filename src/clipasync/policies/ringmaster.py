"""Ringmaster ASGD (Maranjyan, Tyurin & Richtárik, ICML 2025).

On the arrival of a gradient with delay δ = k − v from worker i:

* if δ < R: x_{k+1} = x_k − T(g) and worker i restarts at x_{k+1};
* else the gradient is discarded (counted) and worker i restarts at the current x_k.

With ``cancel_stale=True`` this is the paper's variant "with calculation stops": after
every applied update, each job that can no longer arrive with delay < R (its delay
already reached R) is cancelled and its worker restarts at the current model, so no
worker wastes time on a gradient that will be thrown away.

``delay_count`` says what δ counts: ``"applied"`` (the default, the paper's
δ = k − v over applied updates) or ``"arrivals"``, every arrival since the job was
dispatched, discarded ones included (a threshold rule over arrivals, as asynchronous
SGD with a delay threshold is also written). The two differ only once something is
discarded: with stops, as in the public simulator of Maranjyan, Tyurin & Richtárik
whose Ringmaster applies every arrival, they agree
(``tests/sim/test_public_simulator.py``). With ``"arrivals"`` the transform still
sees the version delay k − v (e.g. for a delay-adaptive stepsize), and stale jobs
are cancelled after any arrival that makes them hopeless.

Note:
    The paper's analysis uses T = scale(γ); any transform can be plugged in (e.g.
    clipping), which the paper does not study. ``R = inf`` gives vanilla ASGD.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from clipasync.errors import ConfigError
from clipasync.policies.base import (
    PolicyBase,
    check_num_workers,
    checked_norm,
    skipped_reply,
)
from clipasync.transforms.base import GradientTransform
from clipasync.types import Arrival, Reply, UpdateContext, Vector

#: What a Ringmaster delay counts: applied updates or every arrival.
DelayCount = Literal["applied", "arrivals"]


@dataclass(frozen=True, slots=True)
class RingmasterState:
    """State of :class:`Ringmaster`.

    Attributes:
        x: Current iterate.
        version: k.
        transform_state: State of the transform.
        num_workers: n.
        dispatched: Version at which each worker's current job was dispatched (only
            maintained when stale jobs are cancelled); with ``delay_count=
            "arrivals"``, the number of arrivals before it was dispatched.
        arrivals: Arrivals so far (only counted with ``delay_count="arrivals"``).
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    dispatched: tuple[int, ...]
    arrivals: int = 0


@dataclass(frozen=True)
class Ringmaster(PolicyBase[RingmasterState]):
    """Asynchronous SGD that discards gradients with delay ≥ ``max_delay``.

    Args:
        transform: Maps a gradient to the update vector.
        max_delay: Threshold R ≥ 1 (``math.inf`` accepts everything).
        cancel_stale: Cancel jobs whose delay reached R instead of letting them finish.
        delay_count: What the delay counts: ``"applied"`` updates or all
            ``"arrivals"``.
        name: Label used in reports.
    """

    transform: GradientTransform
    max_delay: float
    cancel_stale: bool = False
    delay_count: DelayCount = "applied"
    name: str = "ringmaster"

    def __post_init__(self) -> None:
        if not (self.max_delay >= 1):
            raise ConfigError(f"max_delay (R) must be >= 1, got {self.max_delay}")
        if self.max_delay != math.inf and self.max_delay != int(self.max_delay):
            raise ConfigError(
                f"max_delay (R) must be an integer or inf, got {self.max_delay}"
            )
        if self.delay_count not in ("applied", "arrivals"):
            raise ConfigError(
                f"delay_count must be 'applied' or 'arrivals', got {self.delay_count!r}"
            )

    @property
    def _by_arrivals(self) -> bool:
        return self.delay_count == "arrivals"

    def init(
        self, x0: Vector, num_workers: int, rng: np.random.Generator
    ) -> RingmasterState:
        del rng
        n = check_num_workers(num_workers)
        return RingmasterState(x0, 0, self.transform.init(x0), n, (0,) * n)

    def restart(self, state: RingmasterState) -> RingmasterState:
        """Every worker restarts at x_k: its dispatch version (arrival count) is
        now k (the arrivals so far)."""
        now = state.arrivals if self._by_arrivals else state.version
        return RingmasterState(
            state.x,
            state.version,
            state.transform_state,
            state.num_workers,
            (now,) * state.num_workers,
            state.arrivals,
        )

    def on_arrival(
        self, state: RingmasterState, arrival: Arrival
    ) -> tuple[RingmasterState, Reply]:
        w = arrival.worker
        delay = state.version - arrival.version
        count = state.arrivals + 1 if self._by_arrivals else 0
        # The delay the threshold reads: applied updates, or arrivals in between
        # (this arrival itself not counted, as for k − v).
        measured = count - 1 - state.dispatched[w] if self._by_arrivals else delay
        g = arrival.payload
        if measured >= self.max_delay:
            new, cancel = self._restart(
                state, state.x, state.version, state.transform_state, count, w
            )
            return new, Reply(
                applied=False, discarded=True, dispatch=(w, *cancel), cancel=cancel
            )
        norm = None
        if g is not None:
            norm = checked_norm(g)
            if norm is None:
                new, cancel = self._restart(
                    state, state.x, state.version, state.transform_state, count, w
                )
                reply = skipped_reply(w, (w, *cancel))
                return new, dataclasses.replace(reply, cancel=cancel)
        info: dict[str, float]
        if g is None:
            x, ts, info = state.x, state.transform_state, {}
        else:
            ctx = UpdateContext(state.version, delay, w, state.num_workers, norm, g)
            u, ts, info = self.transform.update(g, state.transform_state, ctx)
            info.setdefault("pre_clip_norm", norm if norm is not None else math.nan)
            x = state.x - u
        new, cancel = self._restart(state, x, state.version + 1, ts, count, w)
        return new, Reply(applied=True, dispatch=(w, *cancel), cancel=cancel, info=info)

    def _restart(
        self,
        state: RingmasterState,
        x: Vector,
        version: int,
        ts: Any,
        count: int,
        worker: int,
    ) -> tuple[RingmasterState, tuple[int, ...]]:
        """The state after an arrival of ``worker``, which restarts at the current
        model, and the other workers whose jobs are cancelled (``cancel_stale``)."""
        dispatched = state.dispatched
        cancel: tuple[int, ...] = ()
        if self.cancel_stale or self._by_arrivals:
            now = count if self._by_arrivals else version
            # Only the applied count moves in "applied" mode, so a discard (version
            # unchanged) makes no job hopeless there: the paper cancels on updates.
            moved = self._by_arrivals or version != state.version
            if self.cancel_stale and moved:
                limit = now - self.max_delay
                cancel = tuple(
                    i for i, v in enumerate(dispatched) if i != worker and v <= limit
                )
            d = list(dispatched)
            for i in (worker, *cancel):
                d[i] = now
            dispatched = tuple(d)
        new = RingmasterState(x, version, ts, state.num_workers, dispatched, count)
        return new, cancel

    def to_config(self) -> dict[str, Any]:
        return {
            "policy": "Ringmaster",
            "max_delay": self.max_delay,
            "cancel_stale": self.cancel_stale,
            **({"delay_count": self.delay_count} if self._by_arrivals else {}),
        }
