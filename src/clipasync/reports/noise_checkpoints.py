"""The points at which ``clipasync noise`` measures the gradient noise (``--at``).

* ``init``: the problem's initial point x_0;
* ``sgd:K``: after K steps of sequential clipped SGD from x_0 (:func:`sgd_iterate`),
  with γ and c the smallest stepsize and max_norm of the config's reference method;
* ``optimum``: the exact minimiser, for problems that know it (``x_star``).
"""

from __future__ import annotations

import numpy as np

from clipasync.engine import StopRule
from clipasync.engine import run as run_engine
from clipasync.errors import ConfigError
from clipasync.experiments.grid import method_grid
from clipasync.experiments.schema import ExperimentConfig
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.problems.base import Problem
from clipasync.seeding import Stream, stream
from clipasync.sim.pool import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms.base import chain
from clipasync.transforms.clipping import clip_by_norm
from clipasync.transforms.stepsizes import scale
from clipasync.types import Vector


def reference_hyper(config: ExperimentConfig) -> tuple[float, float | None]:
    """Return (γ, c): smallest stepsize and max_norm of the reference method."""
    name = config.reference_method
    if name is None:  # pragma: no cover - validation requires a method
        return 0.01, None
    # The resolved grid: stepsizes and clip levels given as effective steps or as
    # noise-norm quantiles are numbers here, as in the runs themselves.
    points = [g.params for g in method_grid(config, name)]
    steps = [p.stepsize for p in points if getattr(p, "stepsize", None) is not None]
    norms = [p.max_norm for p in points if getattr(p, "max_norm", None) is not None]
    return (min(steps) if steps else 0.01), (min(norms) if norms else None)


def checkpoint_point(
    problem: Problem,
    spec: str,
    rng: np.random.Generator,
    *,
    stepsize: float,
    max_norm: float | None,
) -> Vector:
    """Return the point named by a checkpoint spec (see the module docstring).

    Raises:
        ConfigError: On an unknown spec, a bad step count, or ``optimum`` for a
            problem without a known minimiser.
    """
    if spec == "init":
        return problem.initial_point()
    if spec == "optimum":
        x_star = getattr(problem, "x_star", None)
        if x_star is None:
            raise ConfigError(
                f"checkpoint 'optimum': problem {problem.name!r} has no known "
                "minimiser; use init or sgd:K"
            )
        return np.array(x_star, dtype=np.float64)
    if spec.startswith("sgd:"):
        try:
            steps = int(spec[4:])
        except ValueError:
            steps = -1
        if steps < 0:
            raise ConfigError(f"checkpoint {spec!r}: expected sgd:K with K >= 0")
        x = sgd_iterate(problem, steps, rng, stepsize=stepsize, max_norm=max_norm)
        if x is None:
            raise ConfigError(
                f"checkpoint {spec!r}: SGD with stepsize {stepsize:g} diverged"
            )
        return x
    raise ConfigError(
        f"unknown checkpoint {spec!r}; choose init, sgd:K (K SGD steps) or optimum"
    )


def sgd_iterate(
    problem: Problem,
    steps: int,
    rng: np.random.Generator,
    *,
    stepsize: float,
    max_norm: float | None,
) -> Vector | None:
    """Return x_K after K = ``steps`` steps of sequential clipped SGD from x_0.

    x_{k+1} = x_k − γ·clip_c(g(x_k)) with c = ``max_norm`` (``None``: no clip), run
    by the library's own pieces: :class:`~clipasync.policies.AsyncSGD` with the
    transform ``chain(clip_by_norm(c), scale(γ))`` (clipped ASGD, Erickson &
    Johansson 2026, Alg. 1) and one worker on a
    :class:`~clipasync.sim.SimulatedPool` with unit compute times, so every delay is
    0 and the policy is plain sequential SGD. The stochastic gradients are drawn
    from ``rng``, which the caller then keeps drawing from to measure the noise.

    Returns:
        x_K, or ``None`` when the iterates diverged (a non-finite gradient, which
        the policy skips, or a non-finite iterate).
    """
    x0 = problem.initial_point()
    if steps == 0:
        return x0

    def task(worker: int, x: Vector, pool_rng: np.random.Generator) -> Vector:
        del worker, pool_rng  # one worker; the draws come from the checkpoint's rng
        return problem.stochastic_grad(x, rng)

    policy = AsyncSGD(chain(clip_by_norm(max_norm), scale(stepsize)), name="sgd")
    # Fixed times and assign="same" draw nothing: the seeds below are never used.
    pool = SimulatedPool(FixedTimes((1.0,)), task, 0)
    result = run_engine(
        policy,
        pool,
        x0,
        stop=StopRule(max_arrivals=steps),
        rng=stream(0, Stream.POLICY),
    )
    x = result.params
    if result.counts["skipped"] or not np.all(np.isfinite(x)):
        return None
    return x
