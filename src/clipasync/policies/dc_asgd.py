"""Delay-compensated asynchronous SGD, DC-ASGD (Zheng et al., ICML 2017).

A gradient g = ∇f(x_v; ξ) computed at the model x_v a worker pulled is stale by the
time it arrives at x_k. DC-ASGD corrects it with the first-order Taylor term of the
gradient around x_v, the Hessian approximated by λ g ⊙ g (the outer product's
diagonal, scaled):

.. math::

    \\tilde g = g + λ\\, g \\odot g \\odot (x_k - x_v), \\qquad
    x_{k+1} = x_k - T(\\tilde g),

where T is the server transform: ``scale(γ)``, or ``chain(clip_by_norm(c),
scale(γ))`` to clip the *compensated* gradient g̃ (so ‖x_{k+1} − x_k‖ ≤ γc still
holds, as in clipped ASGD, Erickson & Johansson 2026, Algorithm 1). λ = 0 is
asynchronous SGD. As in the paper's parameter-server algorithm, the server keeps a
backup w_bak(m) = x_v of the model each worker m last pulled (n copies of the model),
so a worker gets its next job at x_{k+1} right after its arrival (Algorithm 1 of
Erickson & Johansson 2026, ``assign="same"``).

Note:
    This is DC-ASGD-c (constant λ). The paper's DC-ASGD-a adapts λ_t = λ_0/√MeanSquare
    (a running mean of g ⊙ g); it is not implemented. Because the backup is per
    worker, the method assumes each worker holds the job the server dispatched: the
    registry marks it ``needs_all_workers``, so an open system (clients that start
    jobs at Poisson times) is refused. A non-finite g̃ is skipped and the worker
    restarts at x_k (its backup becomes x_k).

References:
    Zheng, Meng, Wang, Chen, Yu, Ma & Liu (ICML 2017), "Asynchronous Stochastic
    Gradient Descent with Delay Compensation", the worker and parameter-server
    algorithms of DC-ASGD (DC-ASGD-c, constant λ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True, slots=True)
class DCState:
    """State of :class:`DelayCompensated`.

    Attributes:
        x: Current iterate x_k.
        version: k.
        transform_state: State of the transform.
        num_workers: n.
        backups: x_v of each worker's job in flight (w_bak(m) of the paper).
    """

    x: Vector
    version: int
    transform_state: Any
    num_workers: int
    backups: tuple[Vector, ...]


def _pointed(state: DCState, x: Vector, version: int, ts: Any, w: int) -> DCState:
    """The state at (x, version) whose worker ``w`` now computes at x."""
    backups = list(state.backups)
    backups[w] = x
    return DCState(x, version, ts, state.num_workers, tuple(backups))


@dataclass(frozen=True)
class DelayCompensated(PolicyBase[DCState]):
    """DC-ASGD: x ← x − T(g + λ g ⊙ g ⊙ (x − x_v)) (see module docstring).

    Args:
        transform: Maps g̃ to the update vector (stepsize, optional clipping).
        compensation: λ ≥ 0.
        name: Label used in reports.
    """

    transform: GradientTransform
    compensation: float
    name: str = "dc_asgd"

    def __post_init__(self) -> None:
        lam = self.compensation
        if not (math.isfinite(lam) and lam >= 0):
            raise ConfigError(f"compensation (lambda) must be >= 0, got {lam}")

    def init(self, x0: Vector, num_workers: int, rng: np.random.Generator) -> DCState:
        del rng
        n = check_num_workers(num_workers)
        return DCState(x0, 0, self.transform.init(x0), n, (x0,) * n)

    def restart(self, state: DCState) -> DCState:
        """Every worker restarts at x_k: each backup is x_k."""
        n = state.num_workers
        return DCState(state.x, state.version, state.transform_state, n, (state.x,) * n)

    def on_arrival(self, state: DCState, arrival: Arrival) -> tuple[DCState, Reply]:
        w = arrival.worker
        g = arrival.payload
        if g is None:  # timing-only run: advance the version, keep x
            new = _pointed(state, state.x, state.version + 1, state.transform_state, w)
            return new, Reply(applied=True, dispatch=(w,))
        lam = self.compensation
        # λ = 0 leaves g itself (not g + 0·…), so the method is then exactly ASGD.
        compensated = g + lam * (g * g * (state.x - state.backups[w])) if lam else g
        norm = checked_norm(compensated)
        if norm is None:
            new = _pointed(state, state.x, state.version, state.transform_state, w)
            return new, skipped_reply(w)
        delay = state.version - arrival.version
        ctx = UpdateContext(
            state.version, delay, w, state.num_workers, norm, compensated
        )
        u, ts, info = self.transform.update(compensated, state.transform_state, ctx)
        info.setdefault("pre_clip_norm", norm)
        new = _pointed(state, state.x - u, state.version + 1, ts, w)
        return new, Reply(applied=True, dispatch=(w,), info=info)

    def to_config(self) -> dict[str, Any]:
        return {"policy": "DelayCompensated", "compensation": self.compensation}
