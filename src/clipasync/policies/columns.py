"""Asynchronous SGD for K configurations at once: one arrival, K updates.

:class:`ColumnStep` is :class:`~clipasync.policies.async_sgd.AsyncSGD` (and so
normalised SGD) vectorised over a grid whose points differ in their transform
only: configuration j applies

.. math:: x^j_{k_j+1} = x^j_{k_j} - \\gamma_j(\\text{delay}_j)\\,
          \\mathrm{clip}_{c_j}(g^j),

with ``clip`` the exact clip of Erickson & Johansson (2026), arXiv 2606.13287,
Algorithm 1 (or the normalisation g/‖g‖, its c → 0 limit), and γ_j(delay) either
γ_j or the delay-adaptive γ_j·min(1, n/delay) of Mishchenko et al. (2022). Each
row's update is one product, ``x − g·(γ_j·c_j/max(‖g‖, c_j))`` (``γ_j/‖g‖`` to
normalise, ``γ_j`` without a clip), where its one-configuration transform chain
takes two (clip ``g·(c/‖g‖)`` or normalise ``g/‖g‖``, then ``·γ``): a row
differs from its own run by the rounding of ‖g‖ and at most two roundings of the
update per step (bounded by ``tests/sim/test_columns.py``'s relative 1e-12 per
arrival). The job assignment is common to the grid (``assign``), so one policy
stream serves all.

Ringmaster (``max_delays``) is the same step with an arrival of delay ≥ R_j
discarded in row j. The registry gives a method's grid its :class:`ColumnStep` when
every point has one (:func:`async_columns`, :func:`normalized_columns`,
:func:`ringmaster_columns`; an adaptive clip has state, and Ringmaster's
``cancel_stale`` per-configuration cancellations, so they keep the
per-configuration path of :mod:`clipasync.sim.batched`).
"""

from __future__ import annotations

import functools
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


class _Rows(NamedTuple):
    """A :class:`ColumnStep`'s constants gathered for one set of rows (``cols``):
    the operands of its fast path (:meth:`ColumnStep._fast`)."""

    stepsizes: _F64
    #: Numerator and floor of the factor num/max(‖g‖, floor): c_j and c_j for a
    #: clip (c_j/max(‖g‖, c_j), exactly 1.0 at or below the level), the largest
    #: float twice without one (1.0), and 1 and 0 to normalise (1/‖g‖).
    numerators: _F64
    floors: _F64
    #: 0.0 where a row reports ``clipped``, NaN where its transform has no clip.
    clip_base: _F64
    #: 0.0 for a delay-adaptive row, 1.0 for the others; ``None``: no such row.
    adaptive_floor: _F64 | None
    any_normalized: bool
    max_delays: _F64 | None


def _frozen(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=256)
def constant_mask(m: int, value: bool) -> npt.NDArray[np.bool_]:
    """A read-only mask of ``m`` rows, all ``value``: the mask of an arrival that
    no row discards (or skips), shared by every such arrival."""
    return _frozen(np.full(m, value))


@functools.lru_cache(maxsize=256)
def nan_row(m: int) -> _F64:
    """A read-only row of ``m`` NaNs: the telemetry no row records."""
    return _frozen(np.full(m, math.nan))


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
    # The gathered constants of each set of rows an arrival brings: a run has
    # few (rows only leave), so each is computed once (bounded, whatever the
    # arrival order).
    _gathered: dict[bytes, _Rows] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    #: Row j clips (a finite c_j and not normalised).
    clips: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)

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
        clips = _frozen(np.isfinite(self.max_norms) & ~self.normalized)
        object.__setattr__(self, "clips", clips)

    def _rows(self, cols: npt.NDArray[np.intp]) -> _Rows:
        key = cols.tobytes()
        got = self._gathered.get(key)
        if got is not None:
            return got
        if len(self._gathered) > 4 * self.num_columns + 64:
            self._gathered.clear()
        normed = self.normalized[cols]
        clip = np.isfinite(self.max_norms[cols]) & ~normed
        levels = np.where(clip, self.max_norms[cols], _BIG)
        adaptive = self.delay_adaptive[cols] & ~normed
        got = _Rows(
            stepsizes=_frozen(self.stepsizes[cols].astype(np.float64)),
            numerators=_frozen(np.where(normed, 1.0, levels)),
            floors=_frozen(np.where(normed, 0.0, levels)),
            clip_base=_frozen(np.where(clip | normed, 0.0, math.nan)),
            adaptive_floor=(
                _frozen(np.where(adaptive, 0.0, 1.0)) if adaptive.any() else None
            ),
            any_normalized=bool(normed.any()),
            max_delays=(
                None if self.max_delays is None else _frozen(self.max_delays[cols])
            ),
        )
        self._gathered[key] = got
        return got

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
        rows = self._rows(cols)
        norms = np.sqrt(np.einsum("ij,ij->i", gs, gs, dtype=np.float64))
        step = self._step(rows, delays, num_workers)
        m = norms.shape[0]
        # One check for both exits of the fast path: a non-finite norm (the sum
        # is then non-finite; a finite sum that overflows only costs the general
        # path) and a zero norm to normalise.
        total = float(norms.sum())
        if math.isfinite(total) and not (rows.any_normalized and norms.min() == 0.0):
            new, info = self._fast(xs, gs, rows, norms, step)
            skipped = constant_mask(m, False)
        else:
            new, skipped, info = self._general(
                xs, gs, cols, delays, num_workers, norms, step
            )
        if rows.max_delays is None:
            return ColumnResult(new, ~skipped, constant_mask(m, False), skipped, info)
        discarded = delays >= rows.max_delays
        # Checked first: a discarded arrival is never skipped.
        if np.count_nonzero(discarded):
            new[discarded] = xs[discarded]
            skipped = skipped & ~discarded
            info = {k: np.where(discarded, math.nan, v) for k, v in info.items()}
        return ColumnResult(new, ~(skipped | discarded), discarded, skipped, info)

    def _fast(
        self, xs: Rows, gs: Rows, rows: _Rows, norms: _F64, step: _F64
    ) -> tuple[Rows, dict[str, _F64]]:
        """The step of finite gradients with no zero norm to normalise: the factor
        num_j/max(‖g‖, floor_j) (:class:`_Rows`: clip, no clip or normalisation)
        times γ_j, then ``x − factor·g``: one product per row, so a row differs
        from its own run (``g·(c/‖g‖)``, ``g/‖g‖``, then ``·γ``) by a couple of
        roundings of the update."""
        factor = rows.numerators / np.maximum(norms, rows.floors)
        factor *= step
        u = gs * factor.astype(gs.dtype, copy=False)[:, None]
        np.subtract(xs, u, out=u)
        clipped = (norms > rows.floors) + rows.clip_base
        return u, {"pre_clip_norm": norms, "clipped": clipped, "stepsize": step}

    @staticmethod
    def _step(rows: _Rows, delays: npt.NDArray[np.int64], n: int) -> _F64:
        """γ_j, or γ_j·min(1, n/delay) for the delay-adaptive rows: n/max(delay, n)
        (exactly 1.0 up to delay n); the max with 1.0 leaves the other rows'
        γ_j·1.0 = γ_j."""
        if rows.adaptive_floor is None:
            return rows.stepsizes
        rule = n / np.maximum(delays, n)
        out: _F64 = rows.stepsizes * np.maximum(rule, rows.adaptive_floor)
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
