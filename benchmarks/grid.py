"""Grid benchmark: a grid's configurations side by side versus one by one.

Run: ``.venv/bin/python benchmarks/grid.py`` (small: ~30 s of CPU) or ``--full``
(the sizes of the issue: ~3 min of CPU, 7 min of wall time when the 2 cores are
shared with other jobs). Prints, for

* the demo's grid (the tuning stage of ``experiments/stragglers.yaml``: six
  methods, six grid points each; small: D = 64 and one seed, full: D ∈ {1, 64} and
  the three tuning seeds), and
* a grid of clipped ASGD on least squares (full: 64 points, 8 stepsizes × 8 clip
  levels, N = 10,000, d = 400, batch 256, 16 workers — 8 at time 1 and 8 at time
  4 —, 3,000 updates, evaluated every 10 time units; small: 16 points, N = 2,000,
  d = 100, batch 64, 1,000 updates),

the wall time of running every configuration on its own (``execute``) and of the
batched runs (``execute_group``, :mod:`clipasync.experiments.batched`), their ratio
(goals: ≤ 0.2 for the demo, ≤ 0.25 for the 64-point grid), the batched grid's time
÷ one configuration's run (goal: ≤ 8 for 64 points), the peak memory of both
(``tracemalloc``, a separate pass), and how batched time and memory grow with K.
Everything runs in this process with one BLAS thread, as a worker of
``clipasync run`` does.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from clipasync.experiments import validate_config
from clipasync.experiments.batched import execute_group, group_specs
from clipasync.experiments.execute import execute
from clipasync.experiments.grid import RunSpec, expand
from clipasync.experiments.loading import load_config


def _one_blas_thread() -> None:
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover
        return
    threadpool_limits(1)


def demo_specs(full: bool) -> list[RunSpec]:
    sweep = "[1, 64]" if full else "[64]"
    seeds = "[0, 1, 2]" if full else "[0]"
    cfg = load_config(
        "experiments/stragglers.yaml",
        [f"sweep={{timing.slow_time: {sweep}}}", f"protocol.tuning_seeds={seeds}"],
    )
    return expand(cfg)


def least_squares_specs(full: bool, points: int | None = None) -> list[RunSpec]:
    side = 8 if full else 4
    steps = [0.5 * 2.0**-i for i in range(side)]
    clips = [0.25 * 2.0**i for i in range(side)]
    size = (
        {"num_samples": 10_000, "dim": 400, "batch_size": 256}
        if full
        else {"num_samples": 2_000, "dim": 100, "batch_size": 64}
    )
    raw = {
        "name": "grid_benchmark",
        "seeds": [0],
        "problem": {"name": "least_squares", **size, "seed": 0},
        "timing": {"kind": "two_speed", "num_fast": 8, "num_slow": 8, "slow_time": 4},
        "methods": {
            "clipped": {"policy": "async_sgd", "stepsize": steps, "max_norm": clips}
        },
        "stop": {"max_updates": 3000 if full else 1000},
        "eval_every": 10,
        "workers": 1,
    }
    specs = expand(validate_config(raw))
    return specs if points is None else specs[:points]


def _timed(fn: Callable[[], Any]) -> float:
    """Process CPU time of ``fn()``: on a shared machine the wall time also counts
    the other processes' turns (both are printed for the comparisons)."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _timed_both(fn: Callable[[], Any]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _peak_mb(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def one_by_one(specs: list[RunSpec]) -> None:
    for s in specs:
        execute(s)


def batched(specs: list[RunSpec]) -> None:
    for g in group_specs(specs):
        execute_group(g)


def compare(name: str, specs: list[RunSpec]) -> None:
    groups = group_specs(specs)
    # Build (and cache) the problem and warm up before timing.
    execute(specs[0])
    alone_wall, alone = _timed_both(lambda: one_by_one(specs))
    together_wall, together = _timed_both(lambda: batched(specs))
    sizes = sorted((len(g) for g in groups), reverse=True)
    print(f"{name}: {len(specs)} runs in {len(groups)} batches (sizes {sizes[:8]}...)")
    print(
        f"  CPU:  one by one {alone:7.2f} s   batched {together:7.2f} s   "
        f"ratio {together / alone:.3f}"
    )
    print(
        f"  wall: one by one {alone_wall:7.2f} s   batched {together_wall:7.2f} s   "
        f"ratio {together_wall / alone_wall:.3f}"
    )


def growth(specs: list[RunSpec], ks: list[int]) -> None:
    one = min(_timed(lambda: execute(specs[0])) for _ in range(2))
    mem_one = _peak_mb(lambda: execute(specs[0]))
    print(f"  one configuration: {one:.3f} s CPU, peak {mem_one:.1f} MB")
    print("  K    batched CPU s   ÷ one run   per config s   peak MB")
    for k in ks:
        part = specs[:k]
        t = _timed(lambda: execute_group(part))  # noqa: B023 (called at once)
        mem = _peak_mb(lambda: execute_group(part))  # noqa: B023
        print(f"  {k:<4d} {t:13.3f}   {t / one:9.2f}   {t / k:12.4f}   {mem:7.1f}")
    alone = len(specs) * one
    print(f"  {len(specs)} one by one ≈ {alone:.2f} s (K × one run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes")
    args = parser.parse_args()
    _one_blas_thread()
    compare("demo grid (stragglers.yaml, tuning stage)", demo_specs(args.full))
    ls = least_squares_specs(args.full)
    compare(f"least squares, {len(ls)}-point clipped-ASGD grid", ls)
    growth(ls, [1, 4, 16, 64] if args.full else [1, 4, 16])


if __name__ == "__main__":
    main()
