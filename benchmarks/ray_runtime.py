"""Throughput of the Ray runtime against the ideal rate and Ray's parameter-server.

Set-up: 4 workers, each job takes an injected 50 ms (fixed), the gradient is a fixed
random float32 vector (so the runtime, not the maths, is measured), Algorithm 1
(``AsyncSGD``, every worker re-dispatched at once). For d = 10^5, 10^6, 10^7:

* clipasync: ``engine.run`` + ``RayPool`` (policy in the driver);
* Ray's parameter-server example, asynchronous variant: a parameter-server actor
  owns the model and applies each gradient, workers pull its weights ref;
* Ray's floor: the same four actors answering empty calls (no model, no gradient)
  after the same 50 ms: the rate no design with one actor call per job can beat on
  this machine.

Each figure is the median over ``--repeats`` runs, clipasync and the parameter
server alternating (after one warm-up run of each, so both meet an equally warm
object store); the range is printed beside it. Reported: applied updates per second
÷ the ideal Σ 1/τ_i = 80/s, the milliseconds lost per job (4/rate − 50 ms), and
clipasync's rate over the parameter server's. Run:

    .venv/bin/python benchmarks/ray_runtime.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipasync.engine import StopRule, run
from clipasync.policies import AsyncSGD
from clipasync.runtime import RayPool, start_ray
from clipasync.timing import FixedTimes
from clipasync.transforms import scale
from clipasync.types import Task

NUM_WORKERS = 4
TAU_S = 0.05
IDEAL = NUM_WORKERS / TAU_S
SIZES = (10**5, 10**6, 10**7)
UPDATES = {10**5: 300, 10**6: 200, 10**7: 60}
WARMUP = 8


@dataclass(frozen=True)
class FixedGradient:
    """Task factory: the gradient is a fixed random vector (cheap by design)."""

    dim: int

    def __call__(self) -> Task:
        g = np.random.default_rng(0).standard_normal(self.dim).astype(np.float32)

        def task(worker: int, x: Any, rng: np.random.Generator) -> Any:
            return g

        return task


def bench_clipasync(dim: int, warmup_only: bool = False) -> float:
    pool = RayPool(
        FixedGradient(dim),
        timing=FixedTimes((1.0,) * NUM_WORKERS),
        time_unit_s=TAU_S,
        seed=0,
    )
    x0 = np.zeros(dim, dtype=np.float32)
    policy = AsyncSGD(scale(1e-4))
    try:
        n = WARMUP if warmup_only else UPDATES[dim]
        res = run(
            policy,
            pool,
            x0,
            stop=StopRule(max_updates=n + WARMUP),
            rng=np.random.default_rng(0),
        )
        t = res.recorder.arrival_arrays()["time"]  # time units of TAU_S seconds
        return n / (float(t[-1] - t[WARMUP - 1]) * TAU_S)
    finally:
        pool.close()


def bench_parameter_server(dim: int, warmup_only: bool = False) -> float:
    import ray

    @ray.remote(num_cpus=0)
    class ParameterServer:
        def __init__(self, dim: int) -> None:
            self.x = np.zeros(dim, dtype=np.float32)

        def apply_gradients(self, g: Any) -> Any:
            self.x = self.x - np.float32(1e-4) * g
            return self.x

        def get_weights(self) -> Any:
            return self.x

    @ray.remote(num_cpus=0)
    class DataWorker:
        def __init__(self, dim: int) -> None:
            self.g = np.random.default_rng(0).standard_normal(dim).astype(np.float32)

        def compute_gradients(self, weights: Any) -> Any:
            time.sleep(TAU_S)
            return self.g

    ps = ParameterServer.remote(dim)  # type: ignore[attr-defined]
    workers = [DataWorker.remote(dim) for _ in range(NUM_WORKERS)]  # type: ignore[attr-defined]
    weights = ps.get_weights.remote()
    ray.get(weights)
    grads = {w.compute_gradients.remote(weights): w for w in workers}
    n = WARMUP if warmup_only else UPDATES[dim]
    stamps = []
    for _ in range(n + WARMUP):
        ready, _ = ray.wait(list(grads), num_returns=1)
        worker = grads.pop(ready[0])
        weights = ps.apply_gradients.remote(ready[0])
        grads[worker.compute_gradients.remote(weights)] = worker
        stamps.append(time.perf_counter())
    ray.get(weights)
    rate = n / (stamps[-1] - stamps[WARMUP - 1])
    for a in [ps, *workers]:
        ray.kill(a)
    return rate


def bench_floor(updates: int = 300) -> float:
    """Rate of empty actor calls that each take the injected 50 ms."""
    import ray

    @ray.remote(num_cpus=0)
    class Sleeper:
        def run(self) -> None:
            time.sleep(TAU_S)

    actors = [Sleeper.remote() for _ in range(NUM_WORKERS)]  # type: ignore[attr-defined]
    ray.get([a.run.remote() for a in actors])
    pending = {a.run.remote(): a for a in actors}
    stamps = []
    for _ in range(updates + WARMUP):
        ready, _ = ray.wait(list(pending), num_returns=1)
        actor = pending.pop(ready[0])
        ray.get(ready[0])
        pending[actor.run.remote()] = actor
        stamps.append(time.perf_counter())
    for a in actors:
        ray.kill(a)
    return updates / (stamps[-1] - stamps[WARMUP - 1])


def lost_ms(rate: float) -> float:
    """Milliseconds each job takes beyond its 50 ms at this update rate."""
    return (NUM_WORKERS / rate - TAU_S) * 1000.0


def spread(rates: list[float]) -> str:
    """``median ÷ ideal [min–max]``."""
    r = sorted(x / IDEAL for x in rates)
    return f"{statistics.median(r):.2f} [{r[0]:.2f}–{r[-1]:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure")
    args = parser.parse_args()
    start_ray()
    print(
        f"{NUM_WORKERS} workers, injected {TAU_S * 1000:.0f} ms per job; "
        f"ideal Σ1/τ_i = {IDEAL:.0f} updates/s; median [range] of {args.repeats} runs"
    )
    floor = [bench_floor() for _ in range(args.repeats)]
    med = statistics.median(floor)
    print(
        f"Ray floor (empty calls): {med:.1f}/s = {spread(floor)} of ideal, "
        f"{lost_ms(med):.1f} ms lost per job"
    )
    print(
        f"{'params':>8} {'clipasync/s':>12} {'÷ ideal':>17} {'ms lost':>8} "
        f"{'param-server/s':>15} {'÷ ideal':>17} {'clipasync ÷ PS':>15}"
    )
    for dim in SIZES:
        bench_clipasync(dim, warmup_only=True)
        bench_parameter_server(dim, warmup_only=True)
        ours: list[float] = []
        ps: list[float] = []
        for _ in range(args.repeats):
            ours.append(bench_clipasync(dim))
            ps.append(bench_parameter_server(dim))
        o, p = statistics.median(ours), statistics.median(ps)
        print(
            f"{dim:>8.0e} {o:>12.1f} {spread(ours):>17} {lost_ms(o):>8.1f} "
            f"{p:>15.1f} {spread(ps):>17} {o / p:>15.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
