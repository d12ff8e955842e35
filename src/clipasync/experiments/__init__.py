"""Experiments: YAML schema and loading, the grid of runs, building and executing
them, run directories, and the Ray backend (floor 4).

=======================  ===============================================
``schema``               :class:`ExperimentConfig`, :func:`validate_config`
``sections``             problem, stop, availability, diagnostics, protocol
``timing_schema``        the ``timing:`` block and its kinds
``methods``              the ``methods:`` block, from the method registry
``relative``             effective-step and noise-quantile grid axes
``noise_scale``          noise-norm quantiles at the start point
``fields``, ``messages`` grid values; pydantic errors as one line
``loading``              :func:`load_config`: profiles, ``--set`` overrides
``grid``                 :class:`RunSpec`, run ids, :func:`expand`
``build``                config data → policy, task, pool, timing, problem
``execute``              one run → :class:`~clipasync.experiments.execute.RunOutcome`
``rundir``               run-directory layout, saving and loading runs
``runner``               :func:`run_experiment`: process pool, progress bar
``protocol``             tuning protocol stages: tune, refine, eval
``selection``            median tuning scores, the pick, the refined grid
``diagnose``             tail index of the gradient noise after the grid
``analysis``             cells, best grid points, speedups
``ray_backend``          the same grid on Ray
=======================  ===============================================
"""

from clipasync.experiments.grid import RunSpec, expand
from clipasync.experiments.loading import load_config
from clipasync.experiments.runner import run_experiment
from clipasync.experiments.schema import ExperimentConfig, validate_config

__all__ = [
    "ExperimentConfig",
    "RunSpec",
    "expand",
    "load_config",
    "run_experiment",
    "validate_config",
]
