"""Running gradient-norm metrics: the accuracy measure of the nonconvex guarantee.

Erickson & Johansson (2026), "Clipping Makes Distributed and Federated Asynchronous
SGD Robust to Stragglers" (arXiv 2606.13287), Theorem 4.2, bounds the average
(1/T) Σ_{t<T} ‖∇f(x_t)‖ over the iterates of clipped ASGD; the usual nonconvex
stationarity measures are that average of ‖∇f(x_t)‖² and its minimum.
:func:`running_gradient_metrics` wraps a problem's ``evaluate`` so that every
evaluation row also carries

* ``avg_grad_norm_sq``: the mean of ‖∇f(x)‖² over the evaluations so far,
* ``min_grad_norm_sq``: their minimum.

They average over the **evaluation points** (those at which the run calls
``evaluate``, e.g. every ``eval_every`` time units, including x_0), not over every
iterate: the iterates between two evaluations are not seen. On an even cadence of
updates the mean is that of a regular subsample of the iterates; on a cadence of
time it weighs each evaluation by the same amount whatever the number of updates
between them.
"""

from __future__ import annotations

from collections.abc import Callable

from clipasync.errors import ConfigError
from clipasync.types import Vector

Evaluate = Callable[[Vector], dict[str, float]]


def running_gradient_metrics(evaluate: Evaluate) -> Evaluate:
    """Return ``evaluate`` with the running mean and minimum of ‖∇f(x)‖² added.

    ‖∇f(x)‖² is the metric ``grad_norm_sq`` of ``evaluate`` when it has one, else
    ``grad_norm`` squared. The returned function keeps its own count, sum and
    minimum, so wrap once per run (a fresh wrapper starts from no evaluations);
    ``evaluate`` itself is not changed, nor the dict it returns.

    A non-finite ‖∇f‖² (a diverged iterate) makes the mean infinite or NaN from
    then on, as the average over iterates it estimates would be; the minimum
    skips NaN.

    Raises:
        ConfigError: When called, if the metrics hold neither ``grad_norm_sq`` nor
            ``grad_norm``.

    Examples:
        >>> import numpy as np
        >>> ev = running_gradient_metrics(lambda x: {"grad_norm": float(x[0])})
        >>> [ev(np.array([v]))["avg_grad_norm_sq"] for v in (3.0, 1.0, 2.0)]
        [9.0, 5.0, 4.666666666666667]
        >>> ev(np.array([4.0]))["min_grad_norm_sq"]
        1.0
    """
    count = 0
    total = 0.0
    smallest = float("inf")

    def wrapped(x: Vector) -> dict[str, float]:
        nonlocal count, total, smallest
        metrics = evaluate(x)
        if "grad_norm_sq" in metrics:
            sq = float(metrics["grad_norm_sq"])
        elif "grad_norm" in metrics:
            sq = float(metrics["grad_norm"]) ** 2
        else:
            raise ConfigError(
                "running gradient metrics need grad_norm_sq or grad_norm; "
                f"evaluate gave: {', '.join(sorted(metrics)) or 'nothing'}"
            )
        count += 1
        total += sq
        smallest = min(smallest, sq)
        return {
            **metrics,
            "avg_grad_norm_sq": total / count,
            "min_grad_norm_sq": smallest,
        }

    return wrapped


__all__ = ["Evaluate", "running_gradient_metrics"]
