"""Event families: grid points of different methods that share one event sequence.

Asynchronous SGD with ``assign: same`` (Algorithm 1 of Erickson & Johansson (2026),
arXiv 2606.13287, and its vanilla, delay-adaptive and normalised forms), Ringmaster
without cancellations and Rennala with the paper's rule (``cancel_stale: false``)
all answer every arrival by giving its worker the next job, and none of them
cancels a job or draws from its stream: with the same seed, problem and timing the
times, jobs and workers of their runs are the same, whatever the method and its
hyperparameters. They form the family ``"redispatch:same"`` (``assign: random``
points form ``"redispatch:random"``: the next worker is drawn from the policy
stream, in the same way for all of them), and a grid over several such methods runs
as one batched event loop (:mod:`clipasync.experiments.batched`), every method's
comparison then paired by common random numbers.

:class:`ColumnUnion` is the vectorised step of such a mixed batch: each method's
own column step (:mod:`clipasync.policies.columns`,
:mod:`clipasync.policies.rennala_columns`) on its own rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from clipasync.policies.columns import ColumnResult, ColumnUpdate, Rows

REDISPATCH = "redispatch"


def redispatch_family(point: Any) -> str | None:
    """The family of an asynchronous or normalised SGD point: by its assignment."""
    return f"{REDISPATCH}:{point.assign}"


def uncancelled_family(point: Any) -> str | None:
    """The family of a Ringmaster or Rennala point: ``"redispatch:same"`` unless
    it cancels stale jobs (its cancellations then depend on its hyperparameters)."""
    return None if point.cancel_stale else f"{REDISPATCH}:same"


class _Split(NamedTuple):
    """An arrival's rows by part: ``(part, rows, the part's columns)`` each, in
    row order; ``runs``: every part's rows are one run, and the runs follow each
    other."""

    pieces: list[tuple[int, Any, npt.NDArray[np.intp]]]
    runs: bool


class ColumnUnion:
    """The column steps of several methods' rows, as one step.

    Args:
        parts: ``(rows, step)``: the batch's rows (configurations) that ``step``
            serves, its j-th column being ``rows[j]``; every row in one part, and
            every step assigning jobs alike (one family).
    """

    def __init__(self, parts: Sequence[tuple[Sequence[int], ColumnUpdate]]) -> None:
        k = sum(len(rows) for rows, _ in parts)
        self._part = np.full(k, -1, dtype=np.intp)
        self._local = np.zeros(k, dtype=np.intp)
        for i, (rows, step) in enumerate(parts):
            idx = np.asarray(rows, dtype=np.intp)
            if step.num_columns != idx.shape[0]:
                raise ValueError(
                    f"part {i}: {step.num_columns} columns, {len(idx)} rows"
                )
            self._part[idx] = i
            self._local[idx] = np.arange(idx.shape[0])
        if (self._part < 0).any():
            raise ValueError("every row must belong to one part")
        self._steps = [step for _, step in parts]
        # Each arrival's rows are the rows alive when its job was dispatched; a
        # run has few such sets (rows only leave), so each one's split into
        # parts is computed once, a part's run of consecutive rows as a slice
        # (its gathers are then views, not copies).
        self._splits: dict[bytes, _Split] = {}

    def _split(self, cols: npt.NDArray[np.intp]) -> _Split:
        key = cols.tobytes()
        got = self._splits.get(key)
        if got is None:
            if len(self._splits) > 4 * self.num_columns + 64:
                self._splits.clear()  # bounded, whatever the arrival order
            part = self._part[cols]
            pieces = []
            for i in range(len(self._steps)):
                sel = np.flatnonzero(part == i)
                if not sel.shape[0]:
                    continue
                whole: Any = sel
                if sel[-1] - sel[0] + 1 == sel.shape[0]:
                    whole = slice(int(sel[0]), int(sel[-1]) + 1)
                pieces.append((i, whole, self._local[cols[sel]]))
            # Parts that are runs of rows, one after the other (as a batch's
            # methods are): their outputs are concatenated, not scattered.
            pieces.sort(key=lambda p: p[1].start if isinstance(p[1], slice) else -1)
            runs = all(isinstance(p[1], slice) for p in pieces)
            got = _Split(pieces, runs)
            self._splits[key] = got
        return got

    @property
    def num_columns(self) -> int:
        return int(self._part.shape[0])

    def next_worker(
        self, worker: int, num_workers: int, rng: np.random.Generator
    ) -> int:
        return self._steps[0].next_worker(worker, num_workers, rng)

    def update(
        self,
        xs: Rows,
        gs: Rows,
        cols: npt.NDArray[np.intp],
        delays: npt.NDArray[np.int64],
        num_workers: int,
    ) -> ColumnResult:
        """Each part's step on its rows of the arrival (see ``ColumnUpdate``)."""
        split = self._split(cols)
        outs = []
        for i, sel, local in split.pieces:
            step = self._steps[i]
            out = step.update(xs[sel], gs[sel], local, delays[sel], num_workers)
            outs.append((sel, out))
        if len(outs) == 1:
            return outs[0][1]
        res = [out for _, out in outs]
        if res and split.runs and all(r.info.keys() == res[0].info.keys() for r in res):
            return ColumnResult(
                np.concatenate([r.new for r in res]),
                np.concatenate([r.applied for r in res]),
                np.concatenate([r.discarded for r in res]),
                np.concatenate([r.skipped for r in res]),
                {
                    key: np.concatenate([r.info[key] for r in res])
                    for key in res[0].info
                },
            )
        m = cols.shape[0]
        new = np.empty_like(xs)
        # Every row is in one part and every part fills every field of its rows.
        masks = [np.empty(m, dtype=bool) for _ in range(3)]
        info: dict[str, npt.NDArray[np.float64]] = {}
        for sel, out in outs:
            new[sel] = out.new
            for mask, got in zip(masks, out[1:4], strict=True):
                mask[sel] = got
            for key, values in out.info.items():
                if key not in info:
                    info[key] = np.full(m, math.nan)
                info[key][sel] = values
        return ColumnResult(new, masks[0], masks[1], masks[2], info)
