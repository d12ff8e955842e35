"""Gradient transforms: pure ``(init, update)`` pairs chained like optax.

A transform maps a (possibly stale) stochastic gradient g to the vector u that the
server subtracts, x ← x − u. The methods of Erickson & Johansson (2026) and its
baselines are chains of three building blocks:

======================  ==============================================
vanilla ASGD            ``scale(γ)``
clipped ASGD (Alg. 1)   ``chain(clip_by_norm(c), scale(γ))``
delay-adaptive ASGD     ``scale_by_delay(γ)``  (γ·min(1, n/delay))
======================  ==============================================

Unlike optax, ``update`` returns a third value, a small dict of telemetry
(``pre_clip_norm``, ``clipped``, ``stepsize``), because the clipping and delay
diagnostics are first-class outputs of this library.

Examples:
    >>> import numpy as np
    >>> from clipasync.types import UpdateContext
    >>> t = chain(clip_by_norm(1.0), scale(0.5))
    >>> ctx = UpdateContext(step=0, delay=0, worker=0, num_workers=1)
    >>> u, _, info = t.update(np.array([3.0, 4.0]), t.init(np.zeros(2)), ctx)
    >>> u.tolist(), info["pre_clip_norm"], info["clipped"]
    ([0.30000000000000004, 0.4], 5.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from clipasync.errors import ConfigError
from clipasync.types import UpdateContext, Vector

TransformState = Any
Info = dict[str, float]


class GradientTransform(NamedTuple):
    """A pure gradient transformation.

    Attributes:
        init: ``init(params) -> state``.
        update: ``update(grad, state, ctx) -> (update_vector, new_state, info)``.
            Must not mutate ``grad``.
    """

    init: Callable[[Vector], TransformState]
    update: Callable[[Vector, TransformState, UpdateContext], tuple[Vector, Any, Info]]


def _no_state(params: Vector) -> None:
    del params
    return None


def identity() -> GradientTransform:
    """Return the transform u = g."""

    def update(g: Vector, state: None, ctx: UpdateContext) -> tuple[Vector, None, Info]:
        del ctx
        return g, state, {}

    return GradientTransform(_no_state, update)


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

    return GradientTransform(_no_state, update)


def _check_stepsize(stepsize: float) -> float:
    if not (math.isfinite(stepsize) and stepsize > 0):
        raise ConfigError(f"stepsize must be a positive finite number, got {stepsize}")
    return float(stepsize)


def scale(stepsize: float) -> GradientTransform:
    """Multiply by a constant stepsize: u = γ g.

    Raises:
        ConfigError: If ``stepsize`` is not positive and finite.
    """
    gamma = _check_stepsize(stepsize)

    def update(g: Vector, state: None, ctx: UpdateContext) -> tuple[Vector, None, Info]:
        del ctx
        return g * gamma, state, {"stepsize": gamma}

    return GradientTransform(_no_state, update)


DelayRule = Callable[[int, int], float]


def mishchenko_delay_rule(delay: int, num_workers: int) -> float:
    """Return min(1, n / delay), the rule of Mishchenko et al. (2022).

    It is the rule of their public notebook, ``lr * n / max(n, delay)``, so a delay
    below n keeps the full stepsize.
    """
    return 1.0 if delay <= num_workers else num_workers / delay


def scale_by_delay(
    stepsize: float, rule: DelayRule = mishchenko_delay_rule
) -> GradientTransform:
    """Delay-adaptive stepsize: u = γ · rule(delay, n) · g.

    With the default rule this is γ_k = γ · min(1, n / delay_k) (Mishchenko, Bach,
    Even & Woodworth, 2022, "Asynchronous SGD Beats Minibatch SGD Under Arbitrary
    Delays"), where n is the number of workers.

    Raises:
        ConfigError: If ``stepsize`` is not positive and finite.
    """
    gamma = _check_stepsize(stepsize)

    def update(g: Vector, state: None, ctx: UpdateContext) -> tuple[Vector, None, Info]:
        step = gamma * rule(ctx.delay, ctx.num_workers)
        return g * step, state, {"stepsize": step}

    return GradientTransform(_no_state, update)


def chain(*transforms: GradientTransform) -> GradientTransform:
    """Compose transforms left to right; info dicts are merged (later keys win).

    Every transform gets the same context; ``ctx.grad_norm`` is tied to the array
    ``ctx.normed``, so a later transform that sees another vector recomputes its norm
    (see :func:`norm_in_context`).
    """
    if not transforms:
        return identity()
    if len(transforms) == 1:
        return transforms[0]
    updates = tuple(t.update for t in transforms)

    def init(params: Vector) -> tuple[TransformState, ...]:
        return tuple(t.init(params) for t in transforms)

    def update(
        g: Vector, state: tuple[TransformState, ...], ctx: UpdateContext
    ) -> tuple[Vector, tuple[TransformState, ...], Info]:
        info: Info = {}
        new_states = []
        for t_update, s in zip(updates, state, strict=True):
            g, s, part = t_update(g, s, ctx)
            new_states.append(s)
            info.update(part)
        return g, tuple(new_states), info

    return GradientTransform(init, update)
