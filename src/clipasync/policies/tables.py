"""A per-worker gradient table: the estimator of the heterogeneous-data methods.

Malenia SGD (Tyurin & Richtárik, NeurIPS 2023) and Ringleader ASGD (Maranjyan &
Richtárik 2025) keep, for each worker i, the sum G_i of the b_i gradients it sent
since the table was last cleared, and step with the mean over workers of each
worker's mean,

.. math:: \\bar g = \\frac{1}{n} \\sum_{i=1}^{n} \\frac{G_i}{b_i},

so every worker's objective f_i gets weight 1/n however fast it computes (the
minimiser of f = (1/n) Σ f_i stays the fixed point even when the data differ across
workers). A table is two tuples, sums (``None`` while a worker has none, and in
timing-only runs) and counts, so that policy states stay frozen and checkpointable.
"""

from __future__ import annotations

from fractions import Fraction

from clipasync.types import Vector

Sums = tuple[Vector | None, ...]
Counts = tuple[int, ...]


def empty(num_workers: int) -> tuple[Sums, Counts]:
    """Return a table with no gradient."""
    return (None,) * num_workers, (0,) * num_workers


def add(
    sums: Sums, counts: Counts, worker: int, g: Vector | None
) -> tuple[Sums, Counts]:
    """Return the table with ``g`` added to ``worker``'s entry (``g is None``, a
    timing-only run: the count only)."""
    s, c = list(sums), list(counts)
    if g is not None:
        old = s[worker]
        s[worker] = g.copy() if old is None else old + g
    c[worker] += 1
    return tuple(s), tuple(c)


def worker_mean(sums: Sums, counts: Counts) -> Vector | None:
    """Return (1/n) Σ_i G_i / b_i over workers i = 0, ..., n − 1 (in that order, so
    the float result is reproducible); ``None`` in a timing-only run.

    Every count must be at least 1.
    """
    total: Vector | None = None
    for s, c in zip(sums, counts, strict=True):
        if s is None:
            return None
        part = s / c
        total = part if total is None else total + part
    assert total is not None
    return total / len(sums)


def harmonic_at_least(counts: Counts, level: Fraction) -> bool:
    """Whether every b_i ≥ 1 and the harmonic mean (1/n Σ 1/b_i)^{-1} ≥ ``level``,
    in exact rational arithmetic (no rounding decides a step)."""
    if min(counts) < 1:
        return False
    inverse = sum((Fraction(1, c) for c in counts), Fraction(0))
    return Fraction(len(counts)) / inverse >= level
