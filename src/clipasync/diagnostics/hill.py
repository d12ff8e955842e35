"""The Hill estimator of a polynomial (Pareto) tail index, with a bootstrap interval.

A polynomial tail P(X > t) ~ C t^{−α} has *no* finite sub-Weibull θ (Erickson &
Johansson, 2026, Assumption 3.2 then fails for every θ); the Hill index α̂ is the
contrast to :func:`clipasync.diagnostics.tails.estimate_sub_weibull_theta`.
Pure: no I/O; randomness only through a ``numpy.random.Generator``.

References:
    Hill. "A simple general approach to inference about the tail of a
    distribution." Annals of Statistics 3(5), 1975.

    Erickson, Johansson. "Clipping makes distributed and federated asynchronous SGD
    robust to stragglers." arXiv:2606.13287, 2026.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from clipasync.diagnostics.samples import FloatArray, as_samples, resolve_k, top_values
from clipasync.errors import ConfigError

#: Default k = max(10, n // HILL_DIVISOR): the top 1 % of the samples.
HILL_DIVISOR = 100


def _hill(top: FloatArray, k: int) -> float:
    """Return the Hill estimate from the k + 1 largest values in decreasing order."""
    threshold = top[k]
    if threshold <= 0.0:
        raise ConfigError(
            f"samples: the (k+1)-th largest value must be positive for the Hill "
            f"estimator with k={k}, got {threshold}; lower k"
        )
    mean_excess = float(np.mean(np.log(top[:k] / threshold)))
    if mean_excess <= 0.0:
        # The k largest all equal the threshold: no tail information at all.
        return math.inf
    return 1.0 / mean_excess


def hill_tail_index(samples: npt.ArrayLike, k: int | None = None) -> float:
    """Estimate the Pareto tail index α with the Hill estimator.

    For P(X > t) ~ C t^{−α},

    .. math:: \\hat\\alpha = \\Bigl(\\frac1k \\sum_{i=1}^{k}
        \\log\\frac{Y_{(n-i+1)}}{Y_{(n-k)}}\\Bigr)^{-1}.

    A polynomial tail has *no* finite sub-Weibull θ; a Hill estimate that stays
    stable as k varies is a sign the sub-Weibull model is the wrong one.

    Args:
        samples: One-dimensional, finite, non-negative samples.
        k: Number of upper order statistics, 2 <= k <= n − 1; default
            ``max(10, n // 100)`` capped at n − 1.

    Returns:
        α̂ (``inf`` if the k + 1 largest values are all equal).

    Raises:
        ConfigError: On invalid samples or k, or if the (k+1)-th largest value is 0.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = 1.0 + rng.pareto(3.0, size=100_000)  # Pareto I, α = 3
        >>> round(hill_tail_index(x, k=10_000), 1)
        3.0
    """
    arr = as_samples(samples)
    k = resolve_k(k, arr.size, HILL_DIVISOR)
    return _hill(top_values(arr, k + 1), k)


def hill_bootstrap_interval(
    samples: npt.ArrayLike,
    k: int,
    rng: np.random.Generator,
    num_boot: int = 200,
    level: float = 0.9,
) -> tuple[float, float]:
    """Return a percentile-bootstrap confidence interval for the Hill index α.

    Each replicate resamples the n values with replacement and recomputes the Hill
    estimate with the same k; the interval is the (1 − level)/2 and (1 + level)/2
    quantiles of the replicates. Resampling duplicates order statistics, which
    biases the spread slightly low; treat the level as approximate.

    Args:
        samples: One-dimensional, finite, non-negative samples.
        k: Number of upper order statistics, 2 <= k <= n − 1.
        rng: Source of the resampling indices.
        num_boot: Number of bootstrap replicates (>= 10).
        level: Confidence level in (0, 1).

    Returns:
        ``(low, high)`` with low <= high.

    Raises:
        ConfigError: On invalid samples, k, num_boot or level.
    """
    arr = as_samples(samples)
    n = arr.size
    k = resolve_k(k, n, HILL_DIVISOR)
    if isinstance(num_boot, bool) or not isinstance(num_boot, int) or num_boot < 10:
        raise ConfigError(f"num_boot must be an integer >= 10, got {num_boot!r}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must lie in (0, 1), got {level}")
    reps = np.empty(num_boot, dtype=np.float64)
    for b in range(num_boot):
        resample = arr[rng.integers(0, n, size=n)]
        reps[b] = _hill(top_values(resample, k + 1), k)
    low, high = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)
