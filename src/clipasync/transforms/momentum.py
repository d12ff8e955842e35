"""Server optimizers for buffered federated aggregation, as gradient transforms.

FedBuff (Nguyen et al., AISTATS 2022) treats the negated mean client delta as a
pseudo-gradient ĝ = −(1/K) Σ s(τ_i) Δ_i and hands it to a server optimizer; the paper
uses SGD with a server stepsize η_g, optionally with momentum (as in FedAvgM). Here
the server optimizer is a :class:`~clipasync.transforms.GradientTransform` producing
the vector u that the server subtracts, so ``chain(momentum(β), scale(η_g))`` is
heavy-ball server momentum:

.. math:: m_{k+1} = β m_k + ĝ_k, \\qquad x_{k+1} = x_k - η_g m_{k+1}

(the ``torch.optim.SGD(momentum=β, dampening=0)`` convention). The same transform is
the server momentum of asynchronous SGD on each arriving gradient
(:func:`clipasync.transforms.chains.momentum_sgd`).

Examples:
    >>> import numpy as np
    >>> from clipasync.transforms import chain, scale
    >>> from clipasync.types import UpdateContext
    >>> t = chain(momentum(0.5), scale(2.0))
    >>> ctx = UpdateContext(step=0, delay=0, worker=-1, num_workers=1)
    >>> s = t.init(np.zeros(1))
    >>> u, s, _ = t.update(np.ones(1), s, ctx)
    >>> u, s, _ = t.update(np.ones(1), s, ctx)
    >>> u.tolist()
    [3.0]
"""

from __future__ import annotations

import math

import numpy as np

from clipasync.errors import ConfigError
from clipasync.transforms import GradientTransform, Info
from clipasync.types import UpdateContext, Vector


def momentum(beta: float, *, nesterov: bool = False) -> GradientTransform:
    """Heavy-ball (or Nesterov) momentum: m ← β m + g, u = m (or u = g + β m).

    Put it before the stepsize: ``chain(momentum(β), scale(η_g))``. The state is the
    buffer m, initialised to zeros shaped like the parameters.

    Args:
        beta: Momentum coefficient β in [0, 1); ``0`` is plain SGD.
        nesterov: Use the Nesterov form u = g + β m_{k+1}.

    Returns:
        A transform whose info holds ``momentum_norm`` = ‖m_{k+1}‖.

    Raises:
        ConfigError: If ``beta`` is not in [0, 1).
    """
    if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
        raise ConfigError(f"momentum beta must be in [0, 1), got {beta}")
    b = float(beta)

    def init(params: Vector) -> Vector:
        return np.zeros_like(params)

    def update(
        g: Vector, state: Vector, ctx: UpdateContext
    ) -> tuple[Vector, Vector, Info]:
        del ctx
        m = b * state + g
        u = g + b * m if nesterov else m
        return u, m, {"momentum_norm": math.sqrt(float(np.dot(m, m)))}

    return GradientTransform(init, update)
