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
    >>> from clipasync.transforms import chain, clip_by_norm, scale
    >>> from clipasync.types import UpdateContext
    >>> t = chain(clip_by_norm(1.0), scale(0.5))
    >>> ctx = UpdateContext(step=0, delay=0, worker=0, num_workers=1)
    >>> u, _, info = t.update(np.array([3.0, 4.0]), t.init(np.zeros(2)), ctx)
    >>> u.tolist(), info["pre_clip_norm"], info["clipped"]
    ([0.30000000000000004, 0.4], 5.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

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


def no_state(params: Vector) -> None:
    del params
    return None


def identity() -> GradientTransform:
    """Return the transform u = g."""

    def update(g: Vector, state: None, ctx: UpdateContext) -> tuple[Vector, None, Info]:
        del ctx
        return g, state, {}

    return GradientTransform(no_state, update)


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
