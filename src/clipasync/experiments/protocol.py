"""The stages of a tuning protocol: tune, refine, select, evaluate.

With a ``protocol`` block (:class:`~clipasync.experiments.sections.ProtocolConfig`)
an experiment runs in three stages, each a batch of runs that any backend executes
(the ``run_stage`` callback: a process pool with a progress bar, or Ray):

1. ``tune``: every method's coarse grid × the tuning seeds;
2. ``refine``: one refinement around each (sweep point, method)'s coarse best
   (:func:`~clipasync.experiments.selection.refine_points`) × the tuning seeds;
3. ``eval``: the pick over coarse and refined points
   (:func:`~clipasync.experiments.selection.select`) × the evaluation seeds.

``selection.json`` at the top of the run directory records, per (sweep point,
method), the budget (number of coarse points), every coarse point with its tuning
score, the coarse best, the refined points, the pick, its tuning score and the run
ids of its evaluation runs; it is written once the pick is made, before the
evaluation runs. Every run's ``summary.json`` has its ``stage``. Run ids do not hash
the stage, and the tuning and evaluation seeds are disjoint, so each run belongs to
one stage; a rerun into the same directory loads the finished runs of every stage
and recomputes the same selection (it reads tuning runs only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipasync.errors import ClipasyncError
from clipasync.experiments.analysis import EVAL, REFINE, TUNE
from clipasync.experiments.grid import (
    RunSpec,
    check_unique,
    make_specs,
    method_grid,
    sweep_configs,
)
from clipasync.experiments.relative import GridPoint
from clipasync.experiments.rundir import SUMMARY_FILE, load_summary
from clipasync.experiments.schema import ExperimentConfig
from clipasync.experiments.selection import (
    SCORE_KEYS,
    Candidate,
    refine_points,
    same_params,
    select,
    varied_axes,
)
from clipasync.io import write_json_atomic

SELECTION_FILE = "selection.json"
RUN_INDEX_FILE = "runs.json"

#: ``run_stage(stage, specs)`` runs the specs of a stage that have not finished.
StageRunner = Callable[[str, list[RunSpec]], None]


@dataclass
class Choice:
    """The selection of one (sweep point, method).

    Attributes:
        point: The sweep point.
        cfg: The config at that point.
        method: Method name.
        coarse: The coarse grid points and their tuning runs' specs.
        refined: The refined points and their specs.
    """

    point: dict[str, Any]
    cfg: ExperimentConfig
    method: str
    coarse: list[tuple[GridPoint, list[RunSpec]]]
    refined: list[tuple[GridPoint, list[RunSpec]]] = field(default_factory=list)


def _load(runs_dir: Path, specs: list[RunSpec]) -> dict[str, dict[str, Any]]:
    """Load the summaries of finished specs; set a summary's stage to its spec's.

    A run found under a different stage (or none: a legacy run of the same
    settings) is the same run; its summary is rewritten with this stage.

    Raises:
        ClipasyncError: If a run has no summary (it did not finish).
    """
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        summary = load_summary(runs_dir / spec.run_id)
        if summary is None:
            raise ClipasyncError(f"run {spec.run_id} did not finish")
        if summary.get("stage") != spec.stage:
            summary["stage"] = spec.stage
            write_json_atomic(runs_dir / spec.run_id / SUMMARY_FILE, summary)
        out[spec.run_id] = summary
    return out


def _candidates(
    choice: Choice,
    points: list[tuple[GridPoint, list[RunSpec]]],
    stage: str,
    summaries: dict[str, dict[str, Any]],
) -> list[Candidate]:
    proto = choice.cfg.protocol
    assert proto is not None
    out = []
    for gp, specs in points:
        runs = [summaries[s.run_id] for s in specs]
        out.append(
            Candidate.from_runs(
                gp, specs[0].hyper, stage, runs, proto.select_by, proto.tuning_seeds
            )
        )
    return out


def _refine(choice: Choice, best: GridPoint) -> list[GridPoint]:
    """The refined points of a choice, less those that repeat a coarse point."""
    proto = choice.cfg.protocol
    assert proto is not None
    if proto.refine is None:
        return []
    method = choice.cfg.methods[choice.method]
    entry = method.entry
    seen = [gp for gp, _ in choice.coarse]
    out = []
    for gp in refine_points(entry, best, proto.refine.factor, varied_axes(method)):
        if not any(same_params(entry, gp, other) for other in seen):
            out.append(gp)
            seen.append(gp)
    return out


def _write_index(out: Path, stages: list[list[RunSpec]]) -> None:
    write_json_atomic(
        out / RUN_INDEX_FILE, [s.run_id for specs in stages for s in specs]
    )


def run_protocol(
    config: ExperimentConfig, out: Path, runs_dir: Path, run_stage: StageRunner
) -> dict[str, Any]:
    """Run the stages of ``config.protocol`` and return the selection record.

    Args:
        config: A validated experiment with a ``protocol`` block.
        out: The run directory (``runs.json`` and ``selection.json`` go here).
        runs_dir: Its ``runs/`` folder.
        run_stage: Runs the unfinished specs of a stage and stores them.

    Returns:
        The content of ``selection.json``.

    Raises:
        ConfigError: If the config has no protocol or a sweep point is invalid.
    """
    proto = config.protocol
    if proto is None:
        raise ClipasyncError("run_protocol needs a config with a protocol block")
    choices: list[Choice] = []
    for point, cfg in sweep_configs(config):
        for name in cfg.methods:
            grid = [
                (gp, make_specs(cfg, point, name, [gp], proto.tuning_seeds, TUNE))
                for gp in method_grid(cfg, name)
            ]
            choices.append(Choice(point, cfg, name, grid))
    tune = check_unique([s for c in choices for _, specs in c.coarse for s in specs])
    _write_index(out, [tune])
    run_stage(TUNE, tune)
    summaries = _load(runs_dir, tune)

    coarse_best: list[Candidate] = []
    for c in choices:
        best = select(_candidates(c, c.coarse, TUNE, summaries))
        coarse_best.append(best)
        c.refined = [
            (
                gp,
                make_specs(c.cfg, c.point, c.method, [gp], proto.tuning_seeds, REFINE),
            )
            for gp in _refine(c, best.point)
        ]
    refine = check_unique(
        tune + [s for c in choices for _, specs in c.refined for s in specs]
    )[len(tune) :]
    _write_index(out, [tune, refine])
    if refine:
        run_stage(REFINE, refine)
        summaries.update(_load(runs_dir, refine))

    entries: list[dict[str, Any]] = []
    evals: list[RunSpec] = []
    for c, best in zip(choices, coarse_best, strict=True):
        tuned = _candidates(c, c.coarse, TUNE, summaries)
        refined = _candidates(c, c.refined, REFINE, summaries)
        pick = select(tuned + refined)
        specs = make_specs(
            c.cfg, c.point, c.method, [pick.point], proto.eval_seeds, EVAL
        )
        evals += specs
        entries.append(
            {
                "sweep": dict(c.point),
                "method": c.method,
                "policy": c.cfg.methods[c.method].policy,
                "budget": len(c.coarse),
                "coarse": [k.record() for k in tuned],
                "coarse_best": best.record(),
                "refined": [k.record() for k in refined],
                "pick": pick.record(),
                "tuning_score": pick.record()["score"],
                "eval_run_ids": [s.run_id for s in specs],
            }
        )
    check_unique(tune + refine + evals)
    selection = {
        "protocol": proto.model_dump(mode="json"),
        "score": SCORE_KEYS[proto.select_by],
        "statistic": "median over tuning seeds; a run that never confirmed the "
        "target counts as +inf (null)",
        "entries": entries,
    }
    write_json_atomic(out / SELECTION_FILE, selection)
    _write_index(out, [tune, refine, evals])
    run_stage(EVAL, evals)
    _load(runs_dir, evals)
    return selection
