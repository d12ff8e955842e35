"""The ``timing:`` block of an experiment file: compute-time models and their fields.

``kind`` names a model of :mod:`clipasync.timing`; :data:`TIMING_KINDS` lists each
kind's required and optional fields (``clipasync list`` prints it), e.g. ``{kind:
two_speed, num_fast: 8, num_slow: 8, slow_time: 4}`` (the straggler factor D of
Erickson & Johansson 2026, arXiv 2606.13287, §6). Any kind also takes
``tie_break: start | worker``, the simulator's order of simultaneous finishes
(:class:`~clipasync.sim.SimulatedPool`; left out of run settings while unset, so run
ids stay those of earlier versions).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from clipasync.experiments.fields import PositiveFloat, PositiveInt, Strict, nonempty
from clipasync.experiments.limits import check_at_most

#: Timing kinds: description, required fields, optional fields.
TIMING_KINDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "two_speed": (
        "num_fast workers at fast_time, num_slow at slow_time (D)",
        (),
        ("num_fast", "num_slow", "slow_time", "fast_time"),
    ),
    "fixed": ("fixed per-worker times", ("times",), ()),
    "sqrt": ("tau_i = sqrt(i), i = 1..num_workers", ("num_workers",), ()),
    "exponential": ("exponential with a per-worker mean", (), ("mean", "num_workers")),
    "lognormal": (
        "log-normal with a per-worker mean and log-std sigma",
        (),
        ("mean", "num_workers", "sigma"),
    ),
    "pareto": (
        "Pareto (heavy tail) with index alpha > 1",
        (),
        ("mean", "num_workers", "alpha"),
    ),
    "slow_prob": (
        "mean, or mean * slowdown with probability p",
        (),
        ("mean", "num_workers", "p", "slowdown"),
    ),
    "trace": ("replay a CSV with columns worker,compute_time", ("path",), ("cycle",)),
}

TimingKind = Literal[
    "two_speed",
    "fixed",
    "sqrt",
    "exponential",
    "lognormal",
    "pareto",
    "slow_prob",
    "trace",
]


class TimingConfig(Strict):
    """A compute-time model (see :data:`TIMING_KINDS` for the fields of each kind)."""

    kind: TimingKind
    num_fast: Annotated[int, Field(ge=0)] | None = None
    num_slow: Annotated[int, Field(ge=0)] | None = None
    slow_time: PositiveFloat | None = None
    fast_time: PositiveFloat | None = None
    times: list[PositiveFloat] | None = None
    num_workers: PositiveInt | None = None
    mean: PositiveFloat | list[PositiveFloat] | None = None
    sigma: Annotated[float, Field(ge=0)] | None = None
    alpha: Annotated[float, Field(gt=1)] | None = None
    p: Annotated[float, Field(ge=0, le=1)] | None = None
    slowdown: Annotated[float, Field(ge=1)] | None = None
    path: str | None = None
    cycle: bool | None = None
    tie_break: Literal["start", "worker"] | None = None

    @field_validator("times")
    @classmethod
    def _times_nonempty(cls, v: list[float] | None) -> list[float] | None:
        return nonempty(v)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> TimingConfig:
        _, required, optional = TIMING_KINDS[self.kind]
        allowed = {"kind", "tie_break", *required, *optional}
        for name in sorted(self.model_fields_set):
            if name not in allowed:
                raise ValueError(
                    f"timing.{name}: not a field of timing kind {self.kind!r} "
                    f"(its fields: {', '.join(sorted(allowed - {'kind'}))})"
                )
        for name in required:
            if getattr(self, name) is None:
                raise ValueError(
                    f"timing.{name}: required for timing kind {self.kind!r}"
                )
        n = timing_workers(self)
        if n is not None:
            check_at_most("timing: number of workers", n, "workers", "workers")
        if (
            self.kind in ("exponential", "lognormal", "pareto", "slow_prob")
            and not isinstance(self.mean, list)
            and self.num_workers is None
        ):
            raise ValueError(
                f"timing.num_workers: required for timing kind {self.kind!r} "
                "unless mean is a list"
            )
        return self

    def params(self) -> dict[str, Any]:
        """Return the fields that were set (the model's parameters, without kind
        and the simulator's tie_break)."""
        return {
            k: getattr(self, k)
            for k in type(self).model_fields
            if k not in ("kind", "tie_break") and getattr(self, k) is not None
        }


def timing_workers(timing: TimingConfig) -> int | None:
    """Number of workers a timing config defines (``None``: known only at run time)."""
    if timing.kind == "two_speed":
        num_fast = timing.num_fast if timing.num_fast is not None else 8
        return num_fast + (timing.num_slow if timing.num_slow is not None else 8)
    if timing.kind == "fixed":
        return len(timing.times or ())
    if isinstance(timing.mean, list):
        return len(timing.mean)
    return timing.num_workers
