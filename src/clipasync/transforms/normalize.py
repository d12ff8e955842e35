"""Normalisation by the Euclidean norm: u = g/‖g‖, the direction of normalised SGD.

Erickson & Johansson (2026), "Clipping Makes Distributed and Federated Asynchronous
SGD Robust to Stragglers" (arXiv 2606.13287), Algorithm 1, step with
γ·clip_c(g) = γ·min(1, c/‖g‖)·g. When c is below every gradient norm that arrives,
every update is clipped and γ·clip_c(g) = (γc)·g/‖g‖: clipped ASGD at a fixed
effective step η = γc tends, as c → 0, to normalised SGD x ← x − η·g/‖g‖, the
control of a clipping experiment (does clipping help only by normalising?).

Examples:
    >>> import numpy as np
    >>> from clipasync.transforms.normalize import normalize
    >>> from clipasync.types import UpdateContext
    >>> ctx = UpdateContext(step=0, delay=0, worker=0, num_workers=1)
    >>> t = normalize()
    >>> u, _, info = t.update(np.array([3.0, 4.0]), t.init(np.zeros(2)), ctx)
    >>> u.tolist(), info
    ([0.6, 0.8], {'pre_clip_norm': 5.0, 'clipped': 1.0})
"""

from __future__ import annotations

import math

import numpy as np

from clipasync.transforms.base import GradientTransform, Info, no_state
from clipasync.transforms.clipping import grad_norm, norm_in_context
from clipasync.types import UpdateContext, Vector


def normalize() -> GradientTransform:
    """Return the transform u = g/‖g‖ (and u = 0 for g = 0).

    .. math::
        u = \\frac{g}{\\lVert g\\rVert_2}, \\qquad u(0) = 0.

    Chained with ``scale(η)`` it is normalised SGD, the c → 0 limit of clipped ASGD
    at a fixed effective step η = γ·c (arXiv 2606.13287, Algorithm 1): for
    ‖g‖ > c, γ·clip_c(g) = η·g/‖g‖.

    The telemetry matches :func:`~clipasync.transforms.clipping.clip_by_norm`'s,
    so the clipping diagnostics of a run read the same: ``pre_clip_norm`` is ‖g‖
    and ``clipped`` is 1.0 for every nonzero g (normalisation rescales it, as a clip
    at a level below ‖g‖ would), 0.0 for g = 0. The input is never mutated.
    """

    def update(g: Vector, state: None, ctx: UpdateContext) -> tuple[Vector, None, Info]:
        norm = norm_in_context(g, ctx)
        if 0.0 < norm < math.inf:
            return g / norm, state, {"pre_clip_norm": norm, "clipped": 1.0}
        clipped = 1.0 if np.any(g) else 0.0
        return _rescaled(g), state, {"pre_clip_norm": norm, "clipped": clipped}

    return GradientTransform(no_state, update)


def _rescaled(g: Vector) -> Vector:
    """Return g/‖g‖ where ‖g‖ under- or overflowed (0 for g = 0, NaN for NaN).

    ``sqrt(g·g)`` is 0 for a nonzero g whose squares underflow and inf for a finite
    g whose squares overflow; dividing by the largest |g_i| first avoids both.
    """
    peak = float(np.max(np.abs(g))) if g.size else 0.0
    if peak == 0.0:
        zero: Vector = np.zeros_like(g)
        return zero
    scaled = g / peak
    out: Vector = scaled / grad_norm(scaled)
    return out


__all__ = ["normalize"]
