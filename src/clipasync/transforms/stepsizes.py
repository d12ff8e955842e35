"""Stepsizes: a constant γ, and the delay-adaptive rule of Mishchenko et al. (2022)."""

from __future__ import annotations

import math
from collections.abc import Callable

from clipasync.errors import ConfigError
from clipasync.transforms.base import GradientTransform, Info, no_state
from clipasync.types import UpdateContext, Vector


def check_stepsize(stepsize: float) -> float:
    if not (math.isfinite(stepsize) and stepsize > 0):
        raise ConfigError(f"stepsize must be a positive finite number, got {stepsize}")
    return float(stepsize)


def scale(stepsize: float) -> GradientTransform:
    """Multiply by a constant stepsize: u = γ g.

    Raises:
        ConfigError: If ``stepsize`` is not positive and finite.
    """
    stepsize = check_stepsize(stepsize)

    def update(g: Vector, state: None, ctx: UpdateContext) -> tuple[Vector, None, Info]:
        del ctx
        return g * stepsize, state, {"stepsize": stepsize}

    return GradientTransform(no_state, update)


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
    stepsize = check_stepsize(stepsize)

    def update(g: Vector, state: None, ctx: UpdateContext) -> tuple[Vector, None, Info]:
        step = stepsize * rule(ctx.delay, ctx.num_workers)
        return g * step, state, {"stepsize": step}

    return GradientTransform(no_state, update)
