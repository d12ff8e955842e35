"""Asynchronous SGD for K configurations at once: one arrival, K updates.

:class:`ColumnStep` is :class:`~clipasync.policies.async_sgd.AsyncSGD` (and so
normalised SGD) vectorised over a grid whose points differ in their transform
only: configuration j applies

.. math:: x^j_{k_j+1} = x^j_{k_j} - \\gamma_j(\\text{delay}_j)\\,
          \\mathrm{clip}_{c_j}(g^j),

with ``clip`` the exact clip of Erickson & Johansson (2026), arXiv 2606.13287,
Algorithm 1 (or the normalisation g/‖g‖, its c → 0 limit), and γ_j(delay) either
γ_j or the delay-adaptive γ_j·min(1, n/delay) of Mishchenko et al. (2022). Each
row takes the elementwise operations of its one-configuration transform chain in
the same order (clip ``g·(c/‖g‖)``, normalise ``g/‖g‖``, then ``·γ``, then
``x − u``), so a row differs from its own run only by the rounding of ‖g‖. The job
assignment is common to the grid (``assign``), so one policy stream serves all.

Ringmaster (``max_delays``) is the same step with an arrival of delay ≥ R_j
discarded in row j. The registry gives a method's grid its :class:`ColumnStep` when
every point has one (:func:`async_columns`, :func:`normalized_columns`,
:func:`ringmaster_columns`; an adaptive clip has state, and Ringmaster's
``cancel_stale`` per-configuration cancellations, so they keep the
per-configuration path of :mod:`clipasync.sim.batched`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from clipasync.policies.base import Assign
from clipasync.transforms.normalize import normalize
from clipasync.types import UpdateContext

_F64 = npt.NDArray[np.float64]
_BIG = float(np.finfo(np.float64).max)
Rows = npt.NDArray[np.floating[Any]]


class ColumnResult(NamedTuple):
    """What one arrival did to the rows it reached (row i: configuration
    ``cols[i]``): their new iterates, and the masks of the rows where it was
    applied (the version grows by one), discarded on purpose (too stale) and
    skipped (a non-finite gradient), and their telemetry (``pre_clip_norm``,
    ``clipped``, ``stepsize``; NaN where the one-configuration run records none).
    An arrival that is none of the three was collected (a batch still filling)."""

    new: Rows
    applied: npt.NDArray[np.bool_]
    discarded: npt.NDArray[np.bool_]
    skipped: npt.NDArray[np.bool_]
    info: dict[str, _F64]


class ColumnUpdate(Protocol):
    """The vectorised server step of K grid points that share one event sequence:
    the batched loop (:func:`clipasync.sim.columns.run_columns`) asks it for the
    next job's worker and hands it each arrival's rows."""

    @property
    def num_columns(self) -> int: ...

    def next_worker(
        self, worker: int, num_workers: int, rng: np.random.Generator
    ) -> int: ...

    def update(
        self,
        xs: Rows,
        gs: Rows,
        cols: npt.NDArray[np.intp],
        delays: npt.NDArray[np.int64],
        num_workers: int,
    ) -> ColumnResult: ...


@dataclass(frozen=True)
class ColumnStep:
    """The server step of K asynchronous-SGD configurations (module docstring).

    Args:
        stepsizes: γ_j.
        max_norms: c_j (``inf``: no clip).
        normalized: Row j normalises (normalised SGD) instead of clipping.
        delay_adaptive: Row j scales γ_j by min(1, n/delay).
        assign: The common job assignment (``"same"`` or ``"random"``).
        max_delays: Ringmaster's R_j: an arrival with delay ≥ R_j is discarded
            (counted, not applied) in row j; ``None``: none is.
    """

    stepsizes: _F64
    max_norms: _F64
    normalized: npt.NDArray[np.bool_]
    delay_adaptive: npt.NDArray[np.bool_]
    assign: Assign = "same"
    max_delays: _F64 | None = None
    _levels: _F64 = field(init=False, repr=False)
    _has_clip: npt.NDArray[np.bool_] = field(init=False, repr=False)
    _all_normalized: bool = field(init=False, repr=False)
    _any_normalized: bool = field(init=False, repr=False)
    _any_adaptive: bool = field(init=False, repr=False)

    @property
    def num_columns(self) -> int:
        return int(self.stepsizes.shape[0])

    def next_worker(
        self, worker: int, num_workers: int, rng: np.random.Generator
    ) -> int:
        """The worker of the next job (Algorithm 1: ``worker``; 2: uniform)."""
        if self.assign == "same":
            return worker
        return int(rng.integers(num_workers))

    def __post_init__(self) -> None:
        # Per-configuration constants of the fast path (module docstring): a clip
        # factor c/max(‖g‖, c) is 1.0 exactly at or below the level, and c/‖g‖
        # above it, as the scalar clip; "no clip" is the largest float.
        levels = np.where(np.isfinite(self.max_norms), self.max_norms, _BIG)
        object.__setattr__(self, "_levels", levels)
        object.__setattr__(self, "_has_clip", np.isfinite(self.max_norms))
        object.__setattr__(self, "_all_normalized", bool(self.normalized.all()))
        object.__setattr__(self, "_any_normalized", bool(self.normalized.any()))
        object.__setattr__(self, "_any_adaptive", bool(self.delay_adaptive.any()))

    @property
    def clips(self) -> npt.NDArray[np.bool_]:
        """Row j clips (a finite c_j and not normalised)."""
        return self._has_clip & ~self.normalized

    def update(
        self,
        xs: Rows,
        gs: Rows,
        cols: npt.NDArray[np.intp],
        delays: npt.NDArray[np.int64],
        num_workers: int,
    ) -> ColumnResult:
        """Apply row i's gradient ``gs[i]`` to ``xs[i]`` (configuration ``cols[i]``).

        Returns:
            The new rows; every arrival is applied but those discarded
            (Ringmaster's delay ≥ R_j) and skipped (a non-finite gradient), both
            returned unchanged; the telemetry of every row (NaN where the
            one-configuration run records none).
        """
        new, skipped, info = self._update(xs, gs, cols, delays, num_workers)
        discarded = np.zeros(skipped.shape[0], dtype=bool)
        if self.max_delays is not None:
            discarded = delays >= self.max_delays[cols]
        if discarded.any():  # checked first: a discarded arrival is never skipped
            new[discarded] = xs[discarded]
            skipped = skipped & ~discarded
            info = {k: np.where(discarded, math.nan, v) for k, v in info.items()}
        return ColumnResult(new, ~(skipped | discarded), discarded, skipped, info)

    def _update(
        self,
        xs: Rows,
        gs: Rows,
        cols: npt.NDArray[np.intp],
        delays: npt.NDArray[np.int64],
        num_workers: int,
    ) -> tuple[Rows, npt.NDArray[np.bool_], dict[str, _F64]]:
        norms = np.sqrt(np.einsum("ij,ij->i", gs, gs, dtype=np.float64))
        step = self._step(cols, delays, num_workers)
        normed = self.normalized[cols] if self._any_normalized else None
        fast = bool(np.isfinite(norms).all()) and (
            normed is None or not bool((norms[normed] == 0.0).any())
        )
        if not fast:
            return self._general(xs, gs, cols, delays, num_workers, norms, step)
        dtype = gs.dtype
        if self._all_normalized:
            u = gs / norms.astype(dtype, copy=False)[:, None]
            clipped = np.ones_like(norms)
        else:
            levels = self._levels[cols]
            mult = levels / np.maximum(norms, levels)
            u = gs * mult.astype(dtype, copy=False)[:, None]
            clipped = np.where(
                self._has_clip[cols],
                (norms > levels).astype(np.float64),
                math.nan,
            )
            if normed is not None and normed.any():
                # Normalised rows beside clipped ones (:func:`concat_columns`):
                # g/‖g‖, the division of the one-configuration transform.
                u[normed] = (
                    gs[normed] / norms[normed].astype(dtype, copy=False)[:, None]
                )
                clipped[normed] = 1.0
        u *= step.astype(dtype, copy=False)[:, None]
        info = {"pre_clip_norm": norms, "clipped": clipped, "stepsize": step}
        return xs - u, np.zeros(norms.shape[0], dtype=bool), info

    def _step(
        self, cols: npt.NDArray[np.intp], delays: npt.NDArray[np.int64], n: int
    ) -> _F64:
        """γ_j, or γ_j·min(1, n/delay) for the delay-adaptive rows."""
        gamma = self.stepsizes[cols]
        if not self._any_adaptive:
            return gamma
        rule = np.where(delays <= n, 1.0, n / np.maximum(delays, 1))
        out: _F64 = np.where(self.delay_adaptive[cols], gamma * rule, gamma)
        return out

    def _general(
        self,
        xs: Rows,
        gs: Rows,
        cols: npt.NDArray[np.intp],
        delays: npt.NDArray[np.int64],
        num_workers: int,
        norms: _F64,
        step: _F64,
    ) -> tuple[Rows, npt.NDArray[np.bool_], dict[str, _F64]]:
        """:meth:`update` with non-finite gradients (skipped) or a zero norm to
        normalise (the scalar transform's rule)."""
        skipped = ~np.isfinite(norms)
        levels = self.max_norms[cols]
        normed = self.normalized[cols]
        over = (norms > levels) & ~normed & ~skipped
        clipped = np.where(
            np.isfinite(levels) & ~normed, over.astype(np.float64), math.nan
        )
        dtype = gs.dtype
        u = gs
        if over.any():
            mult = np.ones_like(norms)
            mult[over] = levels[over] / norms[over]
            u = u * mult.astype(dtype, copy=False)[:, None]
        zero = normed & (norms == 0.0)
        div_rows = normed & ~skipped & ~zero
        if div_rows.any():
            div = np.where(div_rows, norms, 1.0)
            u = u / div.astype(dtype, copy=False)[:, None]
            clipped = np.where(div_rows, 1.0, clipped)
        u = u * step.astype(dtype, copy=False)[:, None]
        if zero.any():
            u = u.copy()
            for i in np.flatnonzero(zero):
                ctx = UpdateContext(0, int(delays[i]), 0, num_workers, 0.0, gs[i])
                v, _, part = normalize().update(gs[i], None, ctx)
                u[i] = v * float(step[i])
                clipped[i] = part["clipped"]
        new = xs - u
        if skipped.any():
            new[skipped] = xs[skipped]
            clipped = np.where(skipped, math.nan, clipped)
        info = {
            "pre_clip_norm": np.where(skipped, math.nan, norms),
            "clipped": clipped,
            "stepsize": np.where(skipped, math.nan, step),
        }
        return new, skipped, info


def column_step(
    points: Sequence[Any], normalized: bool, assign: Assign | None = None
) -> ColumnStep | None:
    """The :class:`ColumnStep` of grid points with ``stepsize``, ``max_norm``,
    ``delay_adaptive`` (none of them when ``normalized``) and ``assign`` fields
    (or the given ``assign``), or ``None`` when the assignments differ or one has
    an adaptive clip."""
    assigns = {p.assign for p in points} if assign is None else {assign}
    if len(assigns) != 1:
        return None
    if not normalized and any(p.adaptive_clip is not None for p in points):
        return None
    k = len(points)
    return ColumnStep(
        stepsizes=np.asarray([float(p.stepsize) for p in points]),
        max_norms=np.asarray(
            [
                math.inf if normalized or p.max_norm is None else float(p.max_norm)
                for p in points
            ]
        ),
        normalized=np.full(k, normalized),
        delay_adaptive=np.asarray(
            [False if normalized else bool(p.delay_adaptive) for p in points]
        ),
        assign=assigns.pop(),
    )


def async_columns(points: Sequence[Any]) -> ColumnStep | None:
    """The :class:`ColumnStep` of asynchronous-SGD grid points (``AsyncSGDParams``),
    or ``None`` when one has an adaptive clip or the assignments differ."""
    return column_step(points, normalized=False)


def normalized_columns(points: Sequence[Any]) -> ColumnStep | None:
    """The :class:`ColumnStep` of normalised-SGD grid points."""
    return column_step(points, normalized=True)


def ringmaster_columns(points: Sequence[Any]) -> ColumnStep | None:
    """The :class:`ColumnStep` of Ringmaster grid points (``RingmasterParams``):
    asynchronous SGD that discards an arrival with delay ≥ R_j; ``None`` with
    ``cancel_stale``, ``delay_count: arrivals`` or an adaptive clip."""
    if any(p.cancel_stale or p.delay_count == "arrivals" for p in points):
        # Cancellations are per configuration; a delay in arrivals is not the
        # version difference the batched loop computes.
        return None
    step = column_step(points, normalized=False, assign="same")
    if step is None:
        return None
    return replace(step, max_delays=np.asarray([float(p.max_delay) for p in points]))


def concat_columns(steps: Sequence[ColumnStep]) -> ColumnStep | None:
    """One :class:`ColumnStep` whose rows are those of ``steps`` in order (a mixed
    batch of asynchronous, normalised and Ringmaster points: a row without a
    threshold R_j gets R_j = ∞, never discarded), or ``None`` when their job
    assignments differ."""
    if len({s.assign for s in steps}) != 1:
        return None
    limits = None
    if any(s.max_delays is not None for s in steps):
        limits = np.concatenate(
            [
                np.full(s.num_columns, math.inf)
                if s.max_delays is None
                else s.max_delays
                for s in steps
            ]
        )
    return ColumnStep(
        stepsizes=np.concatenate([s.stepsizes for s in steps]),
        max_norms=np.concatenate([s.max_norms for s in steps]),
        normalized=np.concatenate([s.normalized for s in steps]),
        delay_adaptive=np.concatenate([s.delay_adaptive for s in steps]),
        assign=steps[0].assign,
        max_delays=limits,
    )
