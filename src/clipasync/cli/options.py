"""Typer options shared by several commands (``timing`` / ``theory``; ``run`` /
``noise`` / ``hp``).

Both commands describe a compute-time model from the command line when no config is
given, and simulate it; the aliases keep their option names, help texts and limits
from drifting apart. Typer reads defaults from the function signature, so each
command still writes ``num_fast: NumFastOpt = 8`` and the like.

This module imports nothing from :mod:`clipasync.cli.app` or
:mod:`clipasync.cli.diagnostics`, so both can import it without a cycle.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from clipasync.errors import ConfigError
from clipasync.experiments.messages import one_line
from clipasync.experiments.timing_schema import TimingConfig

NumFastOpt = Annotated[int, typer.Option(help="two_speed: fast workers.")]
NumSlowOpt = Annotated[int, typer.Option(help="two_speed: slow workers.")]
SlowTimeOpt = Annotated[float, typer.Option(help="two_speed: slow time D.")]
NumWorkersOpt = Annotated[int, typer.Option(help="sqrt/exponential/...: workers.")]
MeanOpt = Annotated[float, typer.Option(help="Random kinds: mean time.")]
EventsOpt = Annotated[int, typer.Option(help="Updates to simulate.", min=1)]
SeedOpt = Annotated[int, typer.Option(help="Seed.", min=0)]

# Options of every command that loads an experiment file (run, noise, hp).
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a key: --set timing.slow_time=8 (YAML value)."
    ),
]
WorkersOpt = Annotated[
    int | None, typer.Option(help="Worker processes (1: in-process).", min=1)
]
NoProgressOpt = Annotated[
    bool, typer.Option("--no-progress", help="Hide the progress bar.")
]


def timing_from_options(
    kind: str,
    *,
    num_fast: int,
    num_slow: int,
    slow_time: float,
    num_workers: int,
    mean: float,
) -> dict[str, Any]:
    """Validate the timing model given by the options above into a config dict.

    Only the options that ``kind`` uses are passed on, so the defaults of the others
    cannot trip the model's validation. An invalid value raises
    :class:`~clipasync.errors.ConfigError` naming the ``timing.`` key, as a config
    file would.
    """
    raw: dict[str, Any] = {"kind": kind}
    if kind == "two_speed":
        raw.update(num_fast=num_fast, num_slow=num_slow, slow_time=slow_time)
    elif kind == "sqrt":
        raw.update(num_workers=num_workers)
    elif kind not in ("fixed", "trace"):
        raw.update(mean=mean, num_workers=num_workers)
    try:
        return TimingConfig.model_validate(raw).model_dump(
            mode="json", exclude_none=True
        )
    except ValidationError as exc:
        raise ConfigError(one_line(exc).replace("at ", "at timing.", 1)) from None
