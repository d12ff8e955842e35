"""Grid axes relative to the problem: the effective step γ·c and the clip level c as
a quantile of the gradient-noise norms at the start point.

Erickson & Johansson (2026, arXiv 2606.13287, Sec. 4) tune clipped ASGD in the
product γ·c (the length of a clipped step) and c relative to the noise level; a grid
in those units compares alike across problems::

    clipped:
      policy: async_sgd
      effective_step: [0.005, 0.01, 0.02]        # γ·c
      max_norm: {noise_quantile: [0.5, 0.9]}    # c = that quantile of ‖g(x0) − ∇f(x0)‖

Each grid point still holds numbers, ``stepsize = effective_step / max_norm``, and
records the relative coordinates beside them (:class:`GridPoint`): ``effective_step``
and ``noise_quantile`` only when the file uses them, so the records of every other
grid are those of earlier versions. ``effective_step`` also combines with a numeric
``max_norm`` list, and ``noise_quantile`` with a plain ``stepsize`` list. The norms
come from :func:`clipasync.experiments.noise_scale.noise_scale` (one fixed stream,
``num_samples`` draws, cached per problem).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clipasync.errors import HyperparameterError
from clipasync.experiments.fields import as_list, powers
from clipasync.policies.registry import MethodEntry

EFFECTIVE_STEP = "effective_step"
NOISE_QUANTILE = "noise_quantile"
#: On a refined point of a quantile grid: max_norm = clip_scale × the quantile's norm.
CLIP_SCALE = "clip_scale"
#: Draws of the noise norm behind ``noise_quantile`` (the default).
NOISE_SAMPLES = 1000

#: Quantile level → noise norm at the start point.
NoiseScale = Callable[[float], float]


@dataclass(frozen=True)
class RelativeAxes:
    """The relative axes of a method (``None``: that axis is given in plain numbers).

    Attributes:
        effective_step: The γ·c values, in place of a ``stepsize`` list.
        noise_quantile: The quantile levels of c, in place of a ``max_norm`` list.
        num_samples: Noise-norm draws behind the quantiles.
    """

    effective_step: tuple[float, ...] | None = None
    noise_quantile: tuple[float, ...] | None = None
    num_samples: int = NOISE_SAMPLES

    def file_form(self, values: dict[str, Any]) -> dict[str, Any]:
        """Return a method's validated values with these axes as the file gives them
        (in place of the placeholders :func:`split_relative` put in)."""
        out = dict(values)
        if self.effective_step is not None:
            out.pop("stepsize", None)
            out[EFFECTIVE_STEP] = list(self.effective_step)
        if self.noise_quantile is not None:
            out["max_norm"] = {
                NOISE_QUANTILE: list(self.noise_quantile),
                "num_samples": self.num_samples,
            }
        return out


@dataclass(frozen=True)
class GridPoint:
    """One grid point: the typed parameters and the relative coordinates it came
    from (``effective_step``, ``noise_quantile``, ``clip_scale``; empty for a plain
    grid), which the run record's ``hyper`` lists after the parameters' fields."""

    params: Any
    extra: dict[str, float] = field(default_factory=dict)


def _numbers(name: str, value: Any, low: float, high: float | None) -> list[float]:
    values = powers(value) if isinstance(value, dict) else as_list(value)
    if not values:
        raise HyperparameterError(name, "empty grid: give at least one value")
    out = []
    for v in values:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or not v > low or (high is not None and not v < high):
            bound = f"in ({low:g}, {high:g})" if high is not None else f"> {low:g}"
            raise HyperparameterError(name, f"must be a number {bound} (got {v!r})")
        out.append(float(v))
    return out


def _quantiles(spec: dict[str, Any]) -> tuple[tuple[float, ...], int]:
    unknown = set(spec) - {NOISE_QUANTILE, "num_samples"}
    if unknown:
        raise HyperparameterError(
            "max_norm",
            f"unknown key {sorted(unknown)[0]!r}; allowed: {NOISE_QUANTILE}, "
            "num_samples",
        )
    levels = _numbers(f"max_norm.{NOISE_QUANTILE}", spec[NOISE_QUANTILE], 0.0, 1.0)
    n = spec.get("num_samples", NOISE_SAMPLES)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise HyperparameterError(
            "max_norm.num_samples", f"must be an integer >= 2 (got {n!r})"
        )
    return tuple(levels), n


def split_relative(
    entry: MethodEntry[Any], raw: dict[str, Any]
) -> tuple[dict[str, Any], RelativeAxes | None]:
    """Take the relative axes out of a method's YAML values.

    Returns the values with one-point placeholders (``stepsize: [1]``,
    ``max_norm: [1]``) where the relative axes were, so that the rest validates as
    a plain grid, and the axes (``None`` when the method uses neither).

    Raises:
        HyperparameterError: On a policy without ``stepsize`` and ``max_norm`` axes,
            ``effective_step`` beside ``stepsize`` or without ``max_norm``, or bad
            values (the field named).
    """
    out = dict(raw)
    effective = out.pop(EFFECTIVE_STEP, None)
    clip = out.get("max_norm")
    quantiles = isinstance(clip, dict) and NOISE_QUANTILE in clip
    if effective is None and not quantiles:
        return out, None
    name = EFFECTIVE_STEP if effective is not None else "max_norm"
    if not {"stepsize", "max_norm"} <= set(entry.axes):
        raise HyperparameterError(
            name, f"policy {entry.name!r} has no stepsize and max_norm axes"
        )
    axes = RelativeAxes()
    if quantiles:
        levels, n = _quantiles(out.pop("max_norm"))
        axes = RelativeAxes(noise_quantile=levels, num_samples=n)
        out["max_norm"] = [1.0]
    if effective is not None:
        if "stepsize" in out or "lr" in out:
            raise HyperparameterError(
                EFFECTIVE_STEP, "give effective_step or stepsize (lr), not both"
            )
        if out.get("max_norm") is None:
            raise HyperparameterError(
                EFFECTIVE_STEP, "needs max_norm (stepsize = effective_step / max_norm)"
            )
        steps = _numbers(EFFECTIVE_STEP, effective, 0.0, None)
        axes = RelativeAxes(tuple(steps), axes.noise_quantile, axes.num_samples)
        out["stepsize"] = [1.0]
    return out, axes


def resolve(
    combo: dict[str, Any], axes: RelativeAxes, scale: NoiseScale | None
) -> tuple[dict[str, Any], dict[str, float]]:
    """Turn one grid combination in relative units into numbers.

    ``combo`` holds the effective step under ``stepsize`` and the quantile level
    under ``max_norm`` where those axes are relative.

    Returns:
        The axis values in plain numbers and the relative coordinates (the extra
        keys of the record).

    Raises:
        HyperparameterError: If a quantile grid has no noise scale, or the
            effective step meets a clip level that is not a finite number > 0.
    """
    out = dict(combo)
    extra: dict[str, float] = {}
    if axes.effective_step is not None:
        extra[EFFECTIVE_STEP] = float(combo["stepsize"])
    if axes.noise_quantile is not None:
        if scale is None:
            raise HyperparameterError(
                f"max_norm.{NOISE_QUANTILE}",
                "needs the problem's noise norms (expand the grid per problem)",
            )
        level = float(combo["max_norm"])
        extra[NOISE_QUANTILE] = level
        out["max_norm"] = float(scale(level))
    if axes.effective_step is not None:
        c = out["max_norm"]
        if c is None or not (math.isfinite(c) and c > 0):
            raise HyperparameterError(
                EFFECTIVE_STEP, f"needs a finite max_norm > 0 (got {c!r})"
            )
        out["stepsize"] = extra[EFFECTIVE_STEP] / c
    return out, extra


def probe_scale(level: float) -> float:
    """A stand-in noise scale (c = 1) that validates a quantile grid's other values
    before the problem is built."""
    return 1.0
