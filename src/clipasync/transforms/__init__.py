"""Gradient transforms: pure ``(init, update)`` pairs chained like optax.

``base`` holds the protocol and ``chain``; ``clipping`` the exact clip of
Erickson & Johansson (2026, arXiv 2606.13287, Alg. 1); ``stepsizes`` the constant
and delay-adaptive stepsizes; ``adaptive`` a max_norm learned online; ``momentum``
heavy-ball server momentum (FedBuff's server optimiser); ``normalize``
normalised SGD's u = g/‖g‖.
"""

from clipasync.transforms.base import (
    GradientTransform,
    Info,
    TransformState,
    chain,
    identity,
)
from clipasync.transforms.clipping import clip_by_norm, grad_norm, norm_in_context
from clipasync.transforms.normalize import normalize
from clipasync.transforms.stepsizes import (
    DelayRule,
    check_stepsize,
    mishchenko_delay_rule,
    scale,
    scale_by_delay,
)

__all__ = [
    "DelayRule",
    "GradientTransform",
    "Info",
    "TransformState",
    "chain",
    "check_stepsize",
    "clip_by_norm",
    "grad_norm",
    "identity",
    "mishchenko_delay_rule",
    "norm_in_context",
    "normalize",
    "scale",
    "scale_by_delay",
]
