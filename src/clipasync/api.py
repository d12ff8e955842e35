"""One call from a model and data (or a problem) to the report directory of the CLI.

:func:`compare` runs a comparison of methods on a problem, under a timing model,
over seeds, on the simulator or on Ray, and writes exactly the directory
``clipasync run`` writes (``config.resolved.yaml``, ``runs/<run_id>/``,
``summary.csv``, ``report.md``, the plots): it builds the experiment file's
content in memory and hands it to the same runner and report. :func:`load_weights`
puts a PyTorch run's final weights back into your ``nn.Module``.

The problem may be

* a factory, by import path (``"my_pkg.problems:make"``) or as the function
  itself (``my_pkg.problems.make``), called with ``args``: it runs anywhere
  (worker processes, Ray), as ``problem: {factory: ..., args: ...}`` does;
* a config mapping, as in YAML (``{"name": "torch", "model": "my_nets:MLP",
  "data": {...}}`` or a registered problem);
* a problem object (e.g. a :class:`~clipasync.problems.TorchProblem` built from
  your module and tensors): it lives in this process, so it runs in-process on
  the simulator only (``workers=1``).

A factory defined in the script you run (``__main__``) is imported by the
worker processes as a module from the script's folder: guard the script's work
with ``if __name__ == "__main__":``.

Example::

    from clipasync.api import compare, load_weights
    out = compare("my_nets:make_problem", {"clipped": {"policy": "async_sgd",
                  "stepsize": [0.1], "max_norm": [1.0]}},
                  timing={"kind": "two_speed", "num_fast": 4, "num_slow": 4,
                          "slow_time": 8},
                  stop={"max_time": 200}, eval_every=10, seeds=[0, 1],
                  out="reports/mine")
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from clipasync.errors import ConfigError
from clipasync.experiments.loading import set_root
from clipasync.experiments.ray_backend import run_experiment_on_ray
from clipasync.experiments.runner import WEIGHTS_FILE, run_experiment
from clipasync.experiments.schema import validate_config
from clipasync.problems.base import Problem
from clipasync.problems.imported import GIVEN, given_key
from clipasync.reports.report import build_ray_report, build_report

#: The factory through which an in-memory problem object is reached.
GIVEN_FACTORY = "clipasync.problems.imported:given"


def _callable_path(fn: Callable[..., Any]) -> tuple[str, str | None]:
    """``(import path, root)`` of a module-level function or class."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        raise ConfigError(
            f"problem factory {fn!r} must be a module-level function or class "
            "(a lambda or nested function cannot be imported by worker processes)"
        )
    file = getattr(sys.modules.get(module), "__file__", None)
    root = str(Path(file).resolve().parent) if file else None
    if module == "__main__":
        if file is None:
            raise ConfigError(
                "a factory defined interactively cannot be imported by workers; "
                "put it in a module, or pass the problem object (workers=1)"
            )
        module = Path(file).stem
    return f"{module}:{qualname}", root


def problem_config(
    problem: Problem | str | Callable[..., Any] | Mapping[str, Any],
    args: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``problem:`` block of the experiment for any accepted problem form."""
    if isinstance(problem, Mapping):
        if args is not None:
            raise ConfigError("args: only with a factory (put them in the mapping)")
        raw = {"problem": dict(problem)}
        set_root(raw, Path.cwd())
        cfg: dict[str, Any] = raw["problem"]
        return cfg
    if isinstance(problem, str):
        return {"factory": problem, "args": dict(args or {}), "root": str(Path.cwd())}
    if not isinstance(problem, type) and hasattr(problem, "stochastic_grad"):
        if args is not None:
            raise ConfigError("args: only with a factory, not a problem object")
        obj = cast(Problem, problem)
        key = given_key(obj)
        GIVEN[key] = obj
        return {"factory": GIVEN_FACTORY, "args": {"key": key}}
    if callable(problem):
        path, root = _callable_path(problem)
        cfg = {"factory": path, "args": dict(args or {})}
        if root is not None:
            cfg["root"] = root
        return cfg
    raise ConfigError(
        "problem must be a factory (import path or function), a config mapping "
        f"or a problem object, got {type(problem).__name__}"
    )


def compare(
    problem: Problem | str | Callable[..., Any] | Mapping[str, Any],
    methods: Mapping[str, Mapping[str, Any]],
    *,
    timing: Mapping[str, Any],
    stop: Mapping[str, Any],
    out: str | Path,
    eval_every: float | None = None,
    seeds: Sequence[int] = (0,),
    args: Mapping[str, Any] | None = None,
    backend: str = "sim",
    workers: int | str = 1,
    name: str = "api",
    outputs: Mapping[str, Any] | None = None,
    address: str | None = None,
    time_unit_s: float = 0.05,
    progress: bool = False,
) -> Path:
    """Run a comparison and write its report directory; return the directory.

    Args:
        problem: A factory (import path or function), a ``problem:`` mapping, or a
            problem object (simulator, ``workers=1``): see the module docstring.
        methods: As the YAML ``methods:`` block, e.g. ``{"clipped": {"policy":
            "async_sgd", "stepsize": [0.1], "max_norm": [1.0]}}``.
        timing: As the YAML ``timing:`` block (times in time units).
        stop: As the YAML ``stop:`` block (``max_time`` in time units).
        out: The report directory (a rerun into it skips finished runs).
        eval_every: Evaluation cadence in time units.
        seeds: Seeds of the runs.
        args: The factory's keyword arguments.
        backend: ``"sim"`` or ``"ray"``.
        workers: Simulator processes (``"auto"``: one per core).
        name: Experiment name (letters, digits, ``_.-``).
        outputs: As the YAML ``outputs:`` block, e.g. ``{"tensorboard": True}``.
        address: Ray cluster to join (``None``: a local Ray).
        time_unit_s: Ray: seconds per time unit.
        progress: Show the progress bar.

    Raises:
        ConfigError: One line, before anything is written, for an invalid
            config or a problem that cannot be built.
    """
    cfg = problem_config(problem, args)
    in_memory = cfg.get("factory") == GIVEN_FACTORY
    if in_memory and (backend != "sim" or workers != 1):
        raise ConfigError(
            "a problem object lives in this process: it runs on the simulator with "
            "workers=1; pass a factory (import path or function) for worker "
            "processes or Ray"
        )
    raw: dict[str, Any] = {
        "name": name,
        "seeds": list(seeds),
        "problem": cfg,
        "timing": dict(timing),
        "methods": {k: dict(v) for k, v in methods.items()},
        "stop": dict(stop),
        "workers": workers,
    }
    if eval_every is not None:
        raw["eval_every"] = eval_every
    if outputs is not None:
        raw["outputs"] = dict(outputs)
    config = validate_config(raw)
    if backend == "sim":
        path = run_experiment(config, out, progress=progress)
        build_report(path)
        return path
    if backend == "ray":
        source = yaml.safe_dump(raw, sort_keys=False)
        path = run_experiment_on_ray(
            config,
            out,
            address=address,
            time_unit_s=time_unit_s,
            source=(source, [], None),
        )
        build_ray_report(path)
        return path
    raise ConfigError(f"unknown backend {backend!r}; choose one of: sim, ray")


def load_weights(model: Any, path: str | Path) -> Any:
    """Load a run's ``weights.pt`` into ``model`` (your freshly built module).

    The same as ``model.load_state_dict(torch.load(path, weights_only=True))``;
    ``path`` may be the file, a run folder (``<out>/runs/<run_id>``) or a report
    directory holding exactly one run with weights. Nothing is imported from the
    directory: only tensors are read. Returns ``model``.

    Raises:
        ConfigError: If no (or more than one) ``weights.pt`` is found.
    """
    import torch

    p = Path(path)
    if p.is_dir():
        found = [p / WEIGHTS_FILE] if (p / WEIGHTS_FILE).is_file() else []
        if not found:
            found = sorted(p.glob(f"runs/*/{WEIGHTS_FILE}"))
        if len(found) != 1:
            raise ConfigError(
                f"{p}: {len(found)} runs with {WEIGHTS_FILE}; pass one run folder "
                f"({p}/runs/<run_id>)"
            )
        p = found[0]
    if not p.is_file():
        raise ConfigError(f"no weights file at {p}")
    model.load_state_dict(torch.load(p, weights_only=True))
    return model
