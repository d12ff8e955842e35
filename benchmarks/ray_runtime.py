"""Throughput of the Ray runtime against the ideal rate and Ray's parameter-server.

Set-up: each job takes an injected 50 ms (fixed), the gradient is a fixed random
float32 vector (so the runtime, not the maths, is measured), clipped ASGD
(Algorithm 1 of arXiv 2606.13287, ``chain(clip_by_norm, scale)``; every gradient is
clipped, the costlier branch), every worker re-dispatched at once. Rows:

* 4 workers, d = 10^5, 10^6 (and 10^7 with ``--full``): clipasync with the pure
  server (the policy's numpy path: a norm pass, fresh model-sized arrays), with the
  in-place server (``in_place=True``: the worker sends ‖g‖², the driver updates its
  float32 buffer chunk by chunk) and Ray's parameter-server example (asynchronous
  variant: a parameter-server actor applies each gradient, workers pull its
  weights ref);
* 40 workers at d = 10^5 (in place), with the pool's start-up time;
* the sharded server (``shards=1, 2, 4``) at d = 10^7 (10^6 without ``--full``);
* Ray's floor: the same four actors answering empty calls after the same 50 ms;
* the driver's apply rate: one in-place clipped update of d entries against a
  numpy copy of the same size (measured here, in the same run): the update reads
  g and x and writes x — 1.5× a copy's traffic, or the same three streams as a
  copy that reads its destination before writing it (write-allocate caches) — so
  both 1 / (1.5 · copy time) and 1 / copy time are printed as its limit.

Each figure is the median over ``--repeats`` runs (after one warm-up run of each
kind); the range is printed beside it. Reported: applied updates per second ÷ the
ideal Σ 1/τ_i (80/s for 4 workers, 800/s for 40) and the milliseconds lost per
job. Run (small sizes by default):

    .venv/bin/python benchmarks/ray_runtime.py [--repeats 3] [--full]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from clipasync.engine import StopRule, run
from clipasync.policies import AsyncSGD
from clipasync.runtime import RayPool, start_ray
from clipasync.runtime.inplace import Gradient, ServerBuffer
from clipasync.timing import FixedTimes
from clipasync.transforms import chain, clip_by_norm, scale
from clipasync.types import Arrival, Task, Vector

NUM_WORKERS = 4
TAU_S = 0.05
MAX_NORM = 1.0  # far below ‖g‖ ≈ √d: every gradient is clipped
WARMUP = 8


def ideal(workers: int) -> float:
    return workers / TAU_S


def updates_for(dim: int, workers: int = NUM_WORKERS) -> int:
    base = {10**5: 300, 10**6: 200, 10**7: 60}.get(dim, 100)
    return base * max(1, workers // NUM_WORKERS) // (4 if workers > 4 else 1)


@dataclass(frozen=True)
class FixedGradient:
    """Task factory: the gradient is a fixed random vector (cheap by design)."""

    dim: int

    def __call__(self) -> Task:
        g = np.random.default_rng(0).standard_normal(self.dim).astype(np.float32)

        def task(worker: int, x: Any, rng: np.random.Generator) -> Any:
            return g

        return task


@dataclass
class Measured:
    rate: float  # applied updates per second
    startup_s: float


def bench_clipasync(
    dim: int,
    workers: int = NUM_WORKERS,
    *,
    in_place: bool = False,
    shards: int = 0,
    warmup_only: bool = False,
) -> Measured:
    pool = RayPool(
        FixedGradient(dim),
        timing=FixedTimes((1.0,) * workers),
        time_unit_s=TAU_S,
        seed=0,
        in_place=in_place,
        shards=shards,
    )
    x0 = pool.model(np.zeros(dim, dtype=np.float32))
    policy = AsyncSGD(chain(clip_by_norm(MAX_NORM), scale(1e-4)))
    try:
        n = WARMUP if warmup_only else updates_for(dim, workers)
        res = run(
            policy,
            pool,
            x0,
            stop=StopRule(max_updates=n + WARMUP),
            rng=np.random.default_rng(0),
        )
        t = res.recorder.arrival_arrays()["time"]  # time units of TAU_S seconds
        return Measured(n / (float(t[-1] - t[WARMUP - 1]) * TAU_S), pool.startup_s)
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
    n = WARMUP if warmup_only else updates_for(dim)
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


def bench_apply(dim: int, repeats: int = 7) -> tuple[float, float, float]:
    """Best-of seconds of: one in-place clipped update (driver), one pure-path
    update (the policy's numpy arrays), and a numpy copy of ``dim`` float32."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal(dim).astype(np.float32)
    sq = np.dot(g, g)
    policy = AsyncSGD(chain(clip_by_norm(MAX_NORM), scale(1e-4)))
    buf = ServerBuffer(np.zeros(dim, dtype=np.float32))
    fast = policy.init(buf, 1, np.random.default_rng(0))
    pure = policy.init(np.zeros(dim, dtype=np.float32), 1, np.random.default_rng(0))
    dst = np.empty_like(g)
    t_fast, t_pure, t_copy = [], [], []
    for k in range(repeats):
        # A Gradient stands in for the payload array (numpy's array protocols).
        payload = cast(Vector, Gradient(g, sq))
        a = Arrival(k, 0, policy.version(fast), payload, 0.0)
        t0 = time.perf_counter()
        fast, _ = policy.on_arrival(fast, a)
        t_fast.append(time.perf_counter() - t0)
        a = Arrival(k, 0, policy.version(pure), g, 0.0)
        t0 = time.perf_counter()
        pure, _ = policy.on_arrival(pure, a)
        t_pure.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.copyto(dst, g)
        t_copy.append(time.perf_counter() - t0)
    return min(t_fast), min(t_pure), min(t_copy)


def lost_ms(rate: float, workers: int = NUM_WORKERS) -> float:
    """Milliseconds each job takes beyond its 50 ms at this update rate."""
    return (workers / rate - TAU_S) * 1000.0


def spread(rates: list[float], workers: int = NUM_WORKERS) -> str:
    """``median ÷ ideal [min–max]``."""
    r = sorted(x / ideal(workers) for x in rates)
    return f"{statistics.median(r):.2f} [{r[0]:.2f}–{r[-1]:.2f}]"


def _repeat(fn: Any, repeats: int) -> list[Measured]:
    fn(True)  # warm-up
    return [fn(False) for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure")
    parser.add_argument("--full", action="store_true", help="up to 10^7 parameters")
    args = parser.parse_args()
    sizes = (10**5, 10**6, 10**7) if args.full else (10**5, 10**6)
    shard_dim = 10**7 if args.full else 10**6
    reps = args.repeats
    start_ray()
    print(
        f"{NUM_WORKERS} workers, injected {TAU_S * 1000:.0f} ms per job; "
        f"ideal Σ1/τ_i = {ideal(NUM_WORKERS):.0f} updates/s; median [range] of "
        f"{reps} runs; clipped ASGD, every gradient clipped"
    )
    floor = [bench_floor() for _ in range(reps)]
    med = statistics.median(floor)
    print(
        f"Ray floor (empty calls): {med:.1f}/s = {spread(floor)} of ideal, "
        f"{lost_ms(med):.1f} ms lost per job"
    )
    print(
        f"{'params':>8} {'pure ÷ ideal':>17} {'in-place ÷ ideal':>17} {'ms lost':>8} "
        f"{'param-server ÷ ideal':>21} {'in-place ÷ PS':>14}"
    )
    for dim in sizes:
        pure = _repeat(lambda w, d=dim: bench_clipasync(d, warmup_only=w), reps)
        fast = _repeat(
            lambda w, d=dim: bench_clipasync(d, in_place=True, warmup_only=w), reps
        )
        bench_parameter_server(dim, warmup_only=True)
        ps = [bench_parameter_server(dim) for _ in range(reps)]
        f_rates = [m.rate for m in fast]
        f = statistics.median(f_rates)
        print(
            f"{dim:>8.0e} {spread([m.rate for m in pure]):>17} {spread(f_rates):>17} "
            f"{lost_ms(f):>8.1f} {spread(ps):>21} {f / statistics.median(ps):>14.2f}",
            flush=True,
        )
    many = 40
    rows = _repeat(
        lambda w: bench_clipasync(10**5, many, in_place=True, warmup_only=w), reps
    )
    rates = [m.rate for m in rows]
    starts = sorted(m.startup_s for m in rows)
    print(
        f"{many} workers, 1e+05, in place: {statistics.median(rates):.0f}/s = "
        f"{spread(rates, many)} of ideal {ideal(many):.0f}/s; start-up "
        f"{statistics.median(starts):.1f} s [{starts[0]:.1f}–{starts[-1]:.1f}]",
        flush=True,
    )
    for k in (1, 2, 4):
        rows = _repeat(
            lambda w, k=k: bench_clipasync(shard_dim, shards=k, warmup_only=w), reps
        )
        print(
            f"{shard_dim:.0e}, {k} shard(s): {spread([m.rate for m in rows])} of ideal",
            flush=True,
        )
    for dim in sizes:
        t_fast, t_pure, t_copy = bench_apply(dim)
        limit = 1.0 / (1.5 * t_copy)
        print(
            f"driver apply at {dim:.0e}: in place {1 / t_fast:.0f}/s "
            f"({t_fast * 1e3:.2f} ms), pure {1 / t_pure:.0f}/s "
            f"({t_pure * 1e3:.2f} ms); copy {t_copy * 1e3:.2f} ms -> bandwidth "
            f"limit {limit:.0f}/s; in place ÷ limit {(1 / t_fast) / limit:.2f}, "
            f"÷ copy rate {t_copy / t_fast:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
