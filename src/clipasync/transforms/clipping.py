"""Exact clipping by the Euclidean norm.

Erickson & Johansson (2026), arXiv 2606.13287, Algorithm 1.

``clip_c(g) = min(1, c/‖g‖)·g``: the operator the paper's rates are proved for.
"""

from __future__ import annotations

import math

import numpy as np

from clipasync.errors import ConfigError
from clipasync.transforms.base import GradientTransform, Info, no_state
from clipasync.types import UpdateContext, Vector


def grad_norm(g: Vector) -> float:
    """Return the Euclidean norm ‖g‖₂ as a Python float (one BLAS dot)."""
    return math.sqrt(float(np.dot(g, g)))


def norm_in_context(g: Vector, ctx: UpdateContext) -> float:
    """Return ‖g‖, reusing ``ctx.grad_norm`` when it was computed for this array."""
    if ctx.normed is g and ctx.grad_norm is not None:
        return ctx.grad_norm
    return grad_norm(g)


def clip_by_norm(max_norm: float | None) -> GradientTransform:
    """Clip a gradient to Euclidean norm at most ``max_norm``.

    .. math::
        \\mathrm{clip}_c(g) = \\min\\left(1, \\frac{c}{\\lVert g\\rVert}\\right) g,
        \\qquad \\mathrm{clip}_c(0) = 0.

    This is the exact operator of Erickson & Johansson (2026), Algorithm 1. Note: unlike
    ``torch.nn.utils.clip_grad_norm_`` there is no ``+1e-6`` in the denominator, so a
    clipped gradient has norm exactly ``max_norm`` (up to rounding), and a gradient
    at or below ``max_norm`` is returned unchanged (the same array).

    Args:
        max_norm: Clipping level c > 0; ``None`` or ``inf`` disables clipping (the
            pre-clip norm is still reported).

    Returns:
        A transform whose info holds ``pre_clip_norm`` and ``clipped`` (1.0 or 0.0).

    Raises:
        ConfigError: If ``max_norm`` is not positive or is NaN.
    """
    if max_norm is not None and not (max_norm > 0):
        raise ConfigError(f"max_norm must be positive or None, got {max_norm}")
    level = math.inf if max_norm is None else float(max_norm)

    def update(g: Vector, state: None, ctx: UpdateContext) -> tuple[Vector, None, Info]:
        norm = norm_in_context(g, ctx)
        if norm <= level:
            return g, state, {"pre_clip_norm": norm, "clipped": 0.0}
        return g * (level / norm), state, {"pre_clip_norm": norm, "clipped": 1.0}

    return GradientTransform(no_state, update)
