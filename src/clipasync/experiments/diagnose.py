"""Measure how heavy-tailed a task's gradient noise is, once a grid has run.

For a config with ``diagnostics: {tail_index: {...}}`` (see
:class:`~clipasync.experiments.sections.TailIndexConfig`) this module estimates the
sub-Weibull tail parameter θ of the noise norm ‖g(x) − ∇f(x)‖ (Vladimirova et al. 2020;
the estimator is :func:`clipasync.diagnostics.tails.estimate_sub_weibull_theta`) at

- ``init``: the initial point, once per distinct problem of the sweep;
- ``final``: the last iterate (``runs/<id>/final_x.npy``) of the best configuration's
  median-seed run, per (sweep point, method) of the chosen methods (under a tuning
  protocol: of the picked configuration's evaluation runs).

Reference gradient. ∇f is not computed over the whole training set: the n sampled
stochastic gradients g_1..g_n are kept and each is compared with the mean of the
*other* n − 1 (leave-one-out), which is unbiased and independent of g_i, and equals
n/(n−1)·(g_i − ḡ). A constant factor does not change θ̂ (it only shifts the intercept).
The memory is n × d float32 (500 × 114k ≈ 230 MB for the Fashion-MNIST CNN); above
:data:`MAX_MATRIX_BYTES` the gradients are drawn twice from the same seed instead.

On a partitioned (federated) problem each gradient comes from a uniformly random
worker's shard, the oracle Algorithm 2 queries, so the noise includes the
heterogeneity between shards.

Results are cached in ``diagnostics.json`` (keyed by what was measured and how), so a
resumed or rebuilt experiment does not pay for them twice.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.diagnostics.tails import estimate_sub_weibull_theta
from clipasync.errors import ClipasyncError
from clipasync.experiments.analysis import (
    EVAL,
    LEGACY,
    analyse,
    representative,
    stage_of,
)
from clipasync.experiments.build import build_problem
from clipasync.experiments.rundir import FINAL_POINT_FILE, RUNS_DIR, load_runs
from clipasync.experiments.schema import ExperimentConfig
from clipasync.experiments.sections import TailIndexConfig
from clipasync.io import read_json, write_json_atomic
from clipasync.problems.base import Problem

DIAGNOSTICS_FILE = "diagnostics.json"

#: Largest gradient matrix (bytes) kept in memory; beyond it, two passes.
MAX_MATRIX_BYTES = 1 << 30


def _draw(
    problem: Problem, x: npt.NDArray[Any], rng: np.random.Generator
) -> npt.NDArray[Any]:
    shards = getattr(problem, "num_shards", None)
    worker = int(rng.integers(shards)) if shards else None
    return np.asarray(problem.stochastic_grad(x, rng, worker))


def noise_norms_loo(
    problem: Problem, x: npt.NDArray[Any], num_samples: int, seed: int
) -> npt.NDArray[np.float64]:
    """Return ‖g_i − mean of the other gradients‖ for ``num_samples`` draws at x.

    Args:
        problem: The objective (a uniformly random shard per draw if partitioned).
        x: The point.
        num_samples: Number of stochastic gradients n (>= 2).
        seed: Seed of the draws.

    Returns:
        The n leave-one-out noise norms (float64).
    """
    n = int(num_samples)
    if n * problem.dim * 4 <= MAX_MATRIX_BYTES:
        rng = np.random.default_rng(seed)
        grads = np.empty((n, problem.dim), dtype=np.float32)
        for j in range(n):
            grads[j] = _draw(problem, x, rng)
        mean = grads.mean(axis=0, dtype=np.float64).astype(np.float32)
        grads -= mean
        norms = np.linalg.norm(grads, axis=1).astype(np.float64)
    else:  # pragma: no cover - models above ~500k parameters
        rng = np.random.default_rng(seed)
        total = np.zeros(problem.dim, dtype=np.float64)
        for _ in range(n):
            total += _draw(problem, x, rng)
        mean64 = total / n
        rng = np.random.default_rng(seed)
        norms = np.array(
            [float(np.linalg.norm(_draw(problem, x, rng) - mean64)) for _ in range(n)]
        )
    out: npt.NDArray[np.float64] = norms * (n / (n - 1))
    return out


def measure(
    problem: Problem, x: npt.NDArray[Any], cfg: TailIndexConfig
) -> dict[str, Any]:
    """Return θ̂ and its fit at x (``theta``, ``r2``, ``k``, ``n``, norms, seconds).

    A point with non-finite entries (a diverged run) gives ``theta = nan`` and an
    ``error`` field instead of raising.
    """
    t0 = time.perf_counter()
    if not np.all(np.isfinite(x)):
        return {"theta": math.nan, "error": "non-finite iterate"}
    try:
        norms = noise_norms_loo(problem, x, cfg.num_samples, cfg.seed)
        k = None if cfg.k is None else min(cfg.k, norms.size - 1)
        fit = estimate_sub_weibull_theta(norms, k)
    except (ClipasyncError, ValueError, FloatingPointError) as exc:
        return {"theta": math.nan, "error": " ".join(str(exc).split())}
    return {
        "theta": fit.theta,
        "r2": fit.r2,
        "k": fit.k,
        "n": fit.n,
        "sigma": fit.sigma,
        "median_norm": float(np.median(norms)),
        "max_norm_over_median": float(norms.max() / max(np.median(norms), 1e-30)),
        "seconds": time.perf_counter() - t0,
    }


def _key(kind: str, what: str, cfg: TailIndexConfig) -> str:
    return f"{kind}|{what}|n={cfg.num_samples}|k={cfg.k}|seed={cfg.seed}"


def _selected_methods(config: ExperimentConfig, cfg: TailIndexConfig) -> list[str]:
    if cfg.methods == "all":
        return list(config.methods)
    if cfg.methods == "reference":
        ref = config.reference_method
        return [ref] if ref is not None else []
    return list(cfg.methods)


def tail_index_diagnostics(config: ExperimentConfig, out_dir: str | Path) -> Path:
    """Measure the configured tail indices and write ``diagnostics.json``.

    Entries already in the file (same point, sample size, k and seed) are reused.

    Args:
        config: The experiment (its ``diagnostics.tail_index`` block is used).
        out_dir: Its report directory (finished runs under ``runs/``).

    Returns:
        The path of ``diagnostics.json``.
    """

    out = Path(out_dir)
    path = out / DIAGNOSTICS_FILE
    cfg = config.diagnostics.tail_index if config.diagnostics else None
    cache: dict[str, dict[str, Any]] = {}
    if path.is_file():
        try:
            old = read_json(path)
            cache = {e["key"]: e for e in old.get("tail_index", []) if "key" in e}
        except (OSError, ValueError, AttributeError, TypeError):
            cache = {}
    entries: list[dict[str, Any]] = []
    if cfg is None:
        write_json_atomic(path, {"tail_index": entries})
        return path

    def get(key: str, make: Any, base: dict[str, Any]) -> None:
        entry = cache.get(key)
        if entry is None:
            entry = {"key": key, **base, **make()}
        entries.append(entry)

    seen: set[str] = set()
    if "init" in cfg.at:
        for point in config.sweep_points():
            c = config.at(point) if point else config
            prob_cfg = c.problem.model_dump(mode="json", exclude_none=True)
            pkey = json.dumps(prob_cfg, sort_keys=True)
            if pkey in seen:
                continue
            seen.add(pkey)
            problem = build_problem(prob_cfg)
            get(
                _key("init", pkey, cfg),
                lambda p=problem: measure(p, p.initial_point(), cfg),
                {"at": "init", "point": point, "method": "-", "run_id": None},
            )
    if "final" in cfg.at:
        # Under a tuning protocol, the picked configuration's evaluation runs.
        runs = [r for r in load_runs(out) if stage_of(r) in (EVAL, LEGACY)]
        if runs:
            a = analyse(runs, config.resolved())
            methods = _selected_methods(config, cfg)
            for p in a.points:
                for m in methods:
                    cell = a.best.get((p, m))
                    if cell is None:
                        continue
                    run = representative(cell)
                    xfile = out / RUNS_DIR / run["run_id"] / FINAL_POINT_FILE
                    base = {
                        "at": "final",
                        "point": dict(run.get("sweep", {})),
                        "method": m,
                        "run_id": run["run_id"],
                        "sim_time": run.get("sim_time"),
                    }
                    if not xfile.is_file():
                        entries.append(
                            {
                                **base,
                                "theta": math.nan,
                                "error": f"no {FINAL_POINT_FILE} (run predates "
                                "diagnostics; delete the run dir to redo it)",
                            }
                        )
                        continue
                    problem = build_problem(run["problem"])
                    get(
                        _key("final", run["run_id"], cfg),
                        lambda pr=problem, f=xfile: measure(pr, np.load(f), cfg),
                        base,
                    )
    write_json_atomic(path, {"tail_index": entries})
    return path
