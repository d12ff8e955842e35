"""Rennala SGD for K configurations at once: one arrival, K batch counters.

:class:`RennalaColumns` is :class:`~clipasync.policies.rennala.Rennala` (the
paper's rule, ``cancel_stale=False``) vectorised over grid points that differ in
their stepsize γ_j, clip level c_j, delay-adaptive flag and batch size B_j. Row j
keeps the gradients computed at its current iterate x^j_k (an arrival of delay 0);
an arrival computed at an older iterate is discarded; once B_j have arrived the row
steps with their mean,

.. math:: x^j_{k+1} = x^j_k - \\gamma_j\\,\\mathrm{clip}_{c_j}\\Big(\\frac{1}{B_j}
          \\sum_{i=1}^{B_j} g^j_i\\Big),

(Tyurin & Richtárik 2023, Rennala SGD; the clip is that of Erickson & Johansson
(2026), arXiv 2606.13287, applied to the mean as the one-configuration policy's
``aggregate_step`` does). Every arrival re-dispatches its worker at the row's
current iterate, so the event sequence is that of asynchronous SGD with
``assign: same`` whatever γ_j, c_j and B_j: the grid shares one event loop with the
other methods of that sequence (:mod:`clipasync.policies.families`).

The step keeps per-row state (the running sums and counts), so a fresh one is built
for each batched run. Each row takes its one-configuration policy's operations in
the same order (``total + g``, ``total / count``), then the step of
:class:`~clipasync.policies.columns.ColumnStep` at delay 0, so a row differs from
its own run as that step's rows do (the rounding of ‖·‖ and of its one product).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.policies.columns import (
    ColumnResult,
    ColumnStep,
    Rows,
    column_step,
    constant_mask,
    nan_row,
)

_F64 = npt.NDArray[np.float64]


class RennalaColumns:
    """The server step of K Rennala configurations (module docstring).

    Args:
        inner: The transform of each row's step (γ_j, c_j, delay-adaptive flag),
            applied to the batch mean at delay 0.
        batch_sizes: B_j ≥ 1.
    """

    def __init__(self, inner: ColumnStep, batch_sizes: Sequence[int]) -> None:
        self.inner = inner
        self.batch_sizes = np.asarray(batch_sizes, dtype=np.int64)
        k = inner.num_columns
        if self.batch_sizes.shape != (k,) or (self.batch_sizes < 1).any():
            raise ValueError(f"need {k} batch sizes >= 1, got {list(batch_sizes)}")
        self._totals: Rows | None = None
        self._counts = np.zeros(k, dtype=np.int64)

    @property
    def num_columns(self) -> int:
        return self.inner.num_columns

    def next_worker(
        self, worker: int, num_workers: int, rng: np.random.Generator
    ) -> int:
        """The arriving worker gets the next job (at the row's current iterate)."""
        del num_workers, rng
        return worker

    def update(
        self,
        xs: Rows,
        gs: Rows,
        cols: npt.NDArray[np.intp],
        delays: npt.NDArray[np.int64],
        num_workers: int,
    ) -> ColumnResult:
        """Collect row i's gradient ``gs[i]`` for configuration ``cols[i]``; step the
        rows whose batch it completes.

        Returns:
            As :meth:`ColumnStep.update`: the new rows, the applied mask (the rows
            that stepped), the discarded mask (computed at an older iterate,
            checked first), the skipped mask (non-finite, not collected) and the
            telemetry (``pre_clip_norm`` of the arrival, or of
            the mean where a clipped row steps; ``clipped`` and ``stepsize`` where
            a row steps, NaN elsewhere).
        """
        if self._totals is None:
            self._totals = np.zeros((self.num_columns, gs.shape[1]), dtype=gs.dtype)
        m = gs.shape[0]
        discarded = delays != 0
        fresh = np.flatnonzero(~discarded)
        nan = nan_row(m)
        no = constant_mask(m, False)
        if not fresh.shape[0]:  # every row discards: nothing to collect
            info = {"pre_clip_norm": nan, "clipped": nan, "stepsize": nan}
            return ColumnResult(xs, no, discarded, no, info)
        # Only the collected arrivals' norms are recorded (and checked).
        got = gs[fresh]
        norms = np.sqrt(np.einsum("ij,ij->i", got, got, dtype=np.float64))
        skipped = no
        if not math.isfinite(float(norms.sum())):
            finite = np.isfinite(norms)
            skipped = np.zeros(m, dtype=bool)
            skipped[fresh[~finite]] = True
            fresh, got, norms = fresh[finite], got[finite], norms[finite]
        pre_clip_norm = np.full(m, math.nan)
        pre_clip_norm[fresh] = norms
        info = {"pre_clip_norm": pre_clip_norm, "clipped": nan, "stepsize": nan}
        if not fresh.shape[0]:
            return ColumnResult(xs, no, discarded, skipped, info)
        c = cols[fresh]
        # Rennala's _accumulate copies the first gradient and adds the others;
        # the sums start at zero and 0 + g == g exactly.
        self._totals[c] += got
        self._counts[c] += 1
        done = self._counts[c] >= self.batch_sizes[c]
        new, applied = xs, no
        if np.count_nonzero(done):
            info["clipped"], info["stepsize"] = nan.copy(), nan.copy()
            applied = np.zeros(m, dtype=bool)
            dc = c[done]
            rows = fresh[done]
            mean = self._totals[dc] / self._counts[dc].astype(np.float64)[:, None]
            zero = np.zeros(dc.shape[0], dtype=np.int64)
            # A mean of finite gradients is finite: the inner step applies it.
            step = self.inner.update(xs[rows], mean, dc, zero, num_workers)
            new = xs.copy()
            new[rows] = step.new
            applied[rows] = True
            part = step.info
            # Without a clip the one-configuration step reports no norm of the
            # mean, so the arrival's own norm stays.
            clip = self.inner.clips[dc]
            info["pre_clip_norm"][rows] = np.where(
                clip, part["pre_clip_norm"], norms[done]
            )
            info["clipped"][rows] = part["clipped"]
            info["stepsize"][rows] = part["stepsize"]
            self._counts[dc] = 0
            self._totals[dc] = 0.0
        return ColumnResult(new, applied, discarded, skipped, info)


def rennala_columns(points: Sequence[Any]) -> RennalaColumns | None:
    """The :class:`RennalaColumns` of Rennala grid points (``RennalaParams``), or
    ``None`` with ``cancel_stale`` (its restarts depend on B_j) or an adaptive
    clip (its level has state)."""
    if any(p.cancel_stale for p in points):
        return None
    inner = column_step(points, normalized=False, assign="same")  # None: adaptive
    if inner is None:
        return None
    return RennalaColumns(inner, [int(p.batch_size) for p in points])
