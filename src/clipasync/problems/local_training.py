"""Local training on a client's shard, packaged as one job of a worker pool.

A federated job starts from the server model x_v it was dispatched with (version v),
runs Q local SGD steps on the client's own data and returns the change it made:

.. math::

    y_0 = x_v, \\qquad y_{q+1} = y_q - η_l \\, \\nabla F_i(y_q; ξ_q), \\qquad
    Δ = \\operatorname{clip}_c(y_Q - x_v).

Sign convention (FLSim, FedBuff): Δ = x_local − x_received points *downhill*, so a
server applies it by **adding** it (x ← x + η_g Δ). The core gradient transforms
produce a vector to subtract, hence FedBuff feeds them −Δ.

``output="model"`` returns x_client = x_v + Δ instead, the upload of FedAsync (Xie,
Koyejo & Gupta 2019, Algorithm 1), which mixes models rather than applying deltas.

Client clipping (``client_max_norm`` = c) bounds what one client can move the model
by, as DP-FedBuff does (Nguyen et al., AISTATS 2022, §5) and as clipped ASGD does for
one gradient (Erickson & Johansson 2026, Algorithm 1): with K = 1 and server stepsize
η_g, ‖x_{k+1} − x_k‖ ≤ η_g c. It is the exact clip of
:func:`clipasync.transforms.clip_by_norm` (no epsilon).

A delta that is not finite (the local run diverged) is returned as is: the server
policy skips and counts it.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import numpy as np

from clipasync.errors import ConfigError
from clipasync.transforms import clip_by_norm, grad_norm
from clipasync.types import Task, UpdateContext, Vector

Output = Literal["delta", "model"]


class LocalObjective(Protocol):
    """What local training needs from a problem: a per-shard stochastic gradient.

    Every :class:`~clipasync.problems.base.Problem` built with ``partition=``
    satisfies it.
    """

    def stochastic_grad(
        self, x: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return a minibatch gradient at x from ``worker``'s shard."""
        ...


def local_sgd_task(
    problem: LocalObjective,
    local_steps: int,
    local_stepsize: float,
    client_max_norm: float | None = None,
    *,
    output: Output = "delta",
) -> Task:
    """Return ``task(worker, x, rng)`` running local SGD on ``worker``'s shard.

    The minibatch size is the problem's own (``batch_size`` of its constructor). The
    task never mutates ``x``; every local draw comes from ``rng``, the worker's oracle
    stream, so a run is reproducible whatever the interleaving of clients.

    Args:
        problem: Gives ``stochastic_grad(x, rng, worker=i)`` on shard i.
        local_steps: Q >= 1 local steps per job (Q = 1 and η_l = γ is one plain
            stochastic gradient step, Δ = −γ g).
        local_stepsize: η_l > 0.
        client_max_norm: Clip level c of the delta; ``None`` disables clipping.
        output: ``"delta"`` (Δ, for :class:`~clipasync.policies.fedbuff.FedBuff`)
            or ``"model"`` (x_v + Δ, for
            :class:`~clipasync.policies.fedasync.FedAsync`). Use ``policy.payload``.

    Returns:
        A :data:`clipasync.sim.Task` for :class:`~clipasync.sim.SimulatedPool`.

    Raises:
        ConfigError: On a non-positive step count, stepsize or clip level, or an
            unknown ``output``.

    Examples:
        >>> import numpy as np
        >>> class Quad:  # f_i(x) = ½‖x − (i, i)‖², exact gradient
        ...     def stochastic_grad(self, x, rng, worker=None):
        ...         return x - float(worker)
        >>> task = local_sgd_task(Quad(), local_steps=2, local_stepsize=0.5)
        >>> task(4, np.zeros(2), np.random.default_rng(0)).tolist()
        [3.0, 3.0]
        >>> clipped = local_sgd_task(Quad(), 2, 0.5, client_max_norm=1.0)
        >>> float(np.linalg.norm(clipped(4, np.zeros(2), np.random.default_rng(0))))
        1.0
    """
    if not (isinstance(local_steps, int | np.integer) and local_steps >= 1):
        raise ConfigError(f"local_steps must be an integer >= 1, got {local_steps}")
    if not (math.isfinite(local_stepsize) and local_stepsize > 0):
        raise ConfigError(
            f"local_stepsize must be a positive finite number, got {local_stepsize}"
        )
    if output not in ("delta", "model"):
        raise ConfigError(f"output must be 'delta' or 'model', got {output!r}")
    clip = clip_by_norm(client_max_norm)  # validates client_max_norm
    steps, stepsize = int(local_steps), float(local_stepsize)

    def task(worker: int, x: Vector, rng: np.random.Generator) -> Vector:
        # Accumulate Δ itself rather than forming y_Q − x_v at the end: the
        # subtraction of two nearby models cancels catastrophically in float32.
        delta = -(stepsize * problem.stochastic_grad(x, rng, worker=worker))
        for _ in range(steps - 1):
            delta = delta - stepsize * problem.stochastic_grad(
                x + delta, rng, worker=worker
            )
        norm = grad_norm(delta)
        if math.isfinite(norm):
            ctx = UpdateContext(
                step=0,
                delay=0,
                worker=worker,
                num_workers=1,
                grad_norm=norm,
                normed=delta,
            )
            delta, _, _ = clip.update(delta, None, ctx)
        # A non-finite delta passes through unchanged: the policy skips and counts it.
        return delta if output == "delta" else x + delta

    return task
