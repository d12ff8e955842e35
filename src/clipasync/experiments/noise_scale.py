"""The noise scale behind a ``noise_quantile`` grid: quantiles of the noise norms
‖g(x0) − ∇f(x0)‖ at the problem's start point.

The norms are drawn once per (problem, sample size) and process, from a fixed
stream (seed 0, :attr:`~clipasync.seeding.Stream.PROBLEM`), with
:func:`clipasync.diagnostics.noise_norms`: the same config always gives the same
clip levels, hence the same run ids. A quantile is numpy's linear interpolation
between order statistics. On a partitioned (federated) problem the draws come from
the whole data set (``worker=None``), the average client's noise.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.diagnostics import noise_norms
from clipasync.experiments.build import build_problem
from clipasync.experiments.relative import NOISE_SAMPLES, NoiseScale
from clipasync.seeding import Stream, stream

#: Seed of the stream the noise norms are drawn from.
NOISE_SEED = 0

_NORMS: dict[str, npt.NDArray[np.float64]] = {}


def start_noise_norms(
    problem: dict[str, Any], num_samples: int = NOISE_SAMPLES
) -> npt.NDArray[np.float64]:
    """Return the sorted noise norms at the start point of a resolved problem config
    (cached per process)."""
    key = json.dumps([problem, num_samples], sort_keys=True, default=str)
    norms = _NORMS.get(key)
    if norms is None:
        p = build_problem(problem)
        rng = stream(NOISE_SEED, Stream.PROBLEM)
        norms = np.sort(noise_norms(p, p.initial_point(), rng, num_samples))
        _NORMS[key] = norms
    return norms


def noise_scale(
    problem: dict[str, Any], num_samples: int = NOISE_SAMPLES
) -> NoiseScale:
    """Return quantile level → noise norm at the start point of ``problem``."""
    norms = start_noise_norms(problem, num_samples)

    def quantile(level: float) -> float:
        return float(np.quantile(norms, level))

    return quantile
