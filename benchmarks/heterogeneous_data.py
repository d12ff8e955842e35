"""Which methods find the minimiser of f = (1/n) Σ f_i when the data differ across
workers and the fast workers hold different data from the slow ones.

Set-up: 8 workers, 4 with job time 1 and 4 with job time 8 (``two_speed``); worker i
holds f_i(x) = ½‖x − c_i‖² in R^5 (c_i ~ N(0, 3²I), fixed) and returns
x − c_i + N(0, I). Each method runs for 400 time units from x = 0 at every stepsize
γ ∈ {2^-1, ..., 2^-8}; reported: the median over the seeds of ‖x − c̄‖² at the end
(c̄ = mean c_i, the minimiser) at the best γ. A method that weighs workers by how
often they arrive (asynchronous SGD with ``assign="same"``, Rennala, m of n) settles
near the fast workers' mean; those that weigh each worker 1/n (minibatch, random
assignment, Malenia, Ringleader) reach c̄. Run:

    .venv/bin/python benchmarks/heterogeneous_data.py [--seeds 5] [--time 400]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np

from clipasync.engine import StopRule, run
from clipasync.policies import (
    AsyncSGD,
    DelayCompensated,
    Malenia,
    MSync,
    Rennala,
    Ringleader,
    SyncMinibatch,
)
from clipasync.seeding import Stream, stream
from clipasync.sim import SimulatedPool
from clipasync.timing import two_speed
from clipasync.transforms import scale
from clipasync.transforms.chains import momentum_sgd
from clipasync.types import Vector

NUM_WORKERS = 8
CENTERS = np.random.default_rng(7).normal(scale=3.0, size=(NUM_WORKERS, 5))
TIMING = two_speed(num_fast=4, num_slow=4, slow_time=8.0)
STEPSIZES = [2.0**-k for k in range(1, 9)]

METHODS: dict[str, Callable[[float], Any]] = {
    "async_sgd": lambda g: AsyncSGD(scale(g)),
    "async_sgd, random assignment": lambda g: AsyncSGD(scale(g), assign="random"),
    "async_momentum β=0.5": lambda g: AsyncSGD(momentum_sgd(g, 0.5)),
    "dc_asgd λ=0.5": lambda g: DelayCompensated(scale(g), 0.5),
    "rennala B=8": lambda g: Rennala(scale(g), batch_size=8),
    "minibatch": lambda g: SyncMinibatch(scale(g)),
    "m_sync m=4": lambda g: MSync(scale(g), quorum=4),
    "malenia S=8": lambda g: Malenia(scale(g), batch_size=8),
    "malenia S=32": lambda g: Malenia(scale(g), batch_size=32),
    "ringleader": lambda g: Ringleader(scale(g)),
}


def task(worker: int, x: Vector, rng: np.random.Generator) -> Vector:
    g: Vector = x - CENTERS[worker] + rng.standard_normal(x.shape)
    return g


def final_error(
    make: Callable[[float], Any], gamma: float, seed: int, t: float
) -> float:
    res = run(
        make(gamma),
        SimulatedPool(TIMING, task, seed),
        np.zeros(5),
        stop=StopRule(max_time=t),
        rng=stream(seed, Stream.POLICY),
    )
    return float(np.sum((res.params - CENTERS.mean(axis=0)) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--time", type=float, default=400.0)
    args = parser.parse_args()
    print(f"{'method':30s} {'best γ':>9s}  median ‖x − c̄‖²")
    with np.errstate(over="ignore", invalid="ignore"):  # diverging γ are skipped
        for name, make in METHODS.items():
            best = min(
                (
                    statistics.median(
                        final_error(make, g, s, args.time) for s in range(args.seeds)
                    ),
                    g,
                )
                for g in STEPSIZES
            )
            print(f"{name:30s} {best[1]:9g}  {best[0]:.4g}")


if __name__ == "__main__":
    main()
