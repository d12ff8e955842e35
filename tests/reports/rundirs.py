"""Synthetic run directories for the report tests (summary.json files written as the
runner writes them, without running anything)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

CAP = 100.0
TIMING = {"kind": "two_speed", "num_fast": 15, "num_slow": 1}


def run_summary(
    *,
    method: str,
    hyper: dict[str, Any],
    seed: int,
    d: float,
    hit: float | None,
    stage: str | None,
    diverged: bool = False,
    robust_lag: float | None = 2.0,
    largest_delay: int = 15,
    rate: float = 10.0,
) -> dict[str, Any]:
    """One run's summary: ``hit`` is its first hit (``None``: never); updates and
    gradients at the hit are ``rate`` × time; a censored run stopped at the cap (or
    at half of it when it diverged)."""
    stop_time = CAP / 2 if diverged else CAP
    robust = (
        None
        if hit is None or robust_lag is None or hit + robust_lag > CAP
        else hit + robust_lag
    )
    end = robust if robust is not None else (stop_time if hit is None else CAP)
    s: dict[str, Any] = {
        "run_id": f"{stage or 'legacy'}-{method}-D{d:g}-"
        + "-".join(f"{k}{v}" for k, v in hyper.items())
        + f"-s{seed}",
        "method": method,
        "policy": "async_sgd",
        "hyper": hyper,
        "seed": seed,
        "sweep": {"timing.slow_time": d},
        "timing": {**TIMING, "slow_time": float(d)},
        "stop": {
            "max_time": CAP,
            "target": {"metric": "loss", "value": 0.05, "confirm": 3},
        },
        "reached": hit is not None,
        "time_to_target": hit,
        "first_hit": hit,
        "robust_hit": robust,
        "updates_to_target": None if hit is None else rate * hit,
        "gradients_to_target": None if hit is None else rate * hit + 5,
        "updates_to_robust": None if robust is None else rate * robust,
        "gradients_to_robust": None if robust is None else rate * robust + 5,
        "censor_time": None if hit is not None else stop_time,
        "stop_reason": "diverged"
        if diverged
        else ("target" if robust is not None else "max_time"),
        "sim_time": end,
        "version": int(rate * end),
        "counts": {"arrivals": int(rate * end) + 5, "applied": int(rate * end)},
        "largest_delay": largest_delay,
        "mean_delay": 7.5,
        "frac_clipped": 0.5 if hyper.get("max_norm") is not None else None,
        "final": {"loss": 0.04},
    }
    if stage is not None:
        s["stage"] = stage
    else:  # a legacy run: no protocol fields
        for key in (
            "first_hit",
            "robust_hit",
            "updates_to_target",
            "gradients_to_target",
            "updates_to_robust",
            "gradients_to_robust",
            "censor_time",
        ):
            s.pop(key)
        s["stop"]["target"].pop("confirm")
        s["stop_reason"] = "target" if hit is not None else s["stop_reason"]
        s["sim_time"] = hit if hit is not None else s["sim_time"]
        s["version"] = int(rate * s["sim_time"])
        s["counts"] = {"arrivals": s["version"] + 5, "applied": s["version"]}
    return s


def write_dir(
    out: Path,
    runs: Sequence[dict[str, Any]],
    *,
    protocol: bool,
    methods: dict[str, dict[str, Any]],
    selection: Any = None,
    sweep: Sequence[float] = (1, 64),
) -> Path:
    """Write config.resolved.yaml, runs/<id>/summary.json and selection.json."""
    config: dict[str, Any] = {
        "name": "synthetic",
        "seeds": [0, 1, 2],
        "problem": {"name": "least_squares"},
        "timing": {**TIMING, "slow_time": 1.0},
        "sweep": {"timing.slow_time": list(sweep)},
        "methods": methods,
        "reference": "clipped",
        "stop": {
            "max_time": CAP,
            "target": {"metric": "loss", "value": 0.05}
            | ({"confirm": 3} if protocol else {}),
        },
        "eval_every": 1.0,
    }
    if protocol:
        config["protocol"] = {
            "tuning_seeds": [0, 1, 2],
            "eval_seeds": list(range(1000, 1020)),
            "refine": {"factor": math.sqrt(2)},
            "select_by": "time",
            "equal_budget": True,
            "confidence": 0.9,
        }
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.resolved.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for r in runs:
        d = out / "runs" / r["run_id"]
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps(r))
    if selection is not None:
        (out / "selection.json").write_text(json.dumps(selection))
    return out
