"""Text helpers shared by the report's modules: numbers, ratios, censored values,
intervals and markdown tables (a grid point's text is
:func:`clipasync.policies.registry.label`).

A censored value (a run, or a median, that never reached the target within the
budget) prints as "≥ x", a ratio whose denominator is censored as "≤ x"; see
:class:`clipasync.diagnostics.intervals.Bounded`."""

from __future__ import annotations

import math
from typing import Any

from clipasync.diagnostics.intervals import Bounded, Interval
from clipasync.engine import MINIMISED


def direction(metric: str, stated: str | None = None) -> str:
    """Return how a target on ``metric`` reads: ``≤`` if minimised (``stated``, else
    by name), else ``≥``."""
    if stated is not None:
        return "≤" if stated == "minimise" else "≥"
    return "≤" if metric in MINIMISED else "≥"


def change(ratio: float) -> str:
    """'grew 1.29×' / 'shrank 1.02×' (the factor is always ≥ 1, so it reads right)."""
    if ratio >= 1:
        return f"grew {ratio:.2f}×"
    return f"shrank {1 / ratio:.2f}×"


def fmt_number(v: float, digits: int = 3) -> str:
    """Return ``v`` with ``digits`` significant digits, ``—`` when not finite."""
    if not math.isfinite(v):
        return "—"
    return f"{v:.{digits}g}"


def as_float(v: Any) -> float:
    """Return ``v`` as a float, NaN for ``None`` (a counter a run did not record)."""
    return math.nan if v is None else float(v)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """Return a markdown table (header row, separator, one line per row)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def fmt_count(v: float, digits: int = 3) -> str:
    """Like :func:`fmt_number`, but a value of ``digits`` or more integer digits is
    written whole (3217, not 3.22e+03); ``∞``/``−∞`` for infinities."""
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if not math.isfinite(v):
        return "—"
    if abs(v) >= 10**digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def fmt_bounded(b: Bounded, digits: int = 3, suffix: str = "") -> str:
    """Return a bounded value: ``x``, ``≥ x`` (censored above), ``≤ x`` (a ratio
    with a censored denominator), ``?`` (no bound) or ``lo–hi``.

    Examples:
        >>> fmt_bounded(Bounded(60.0, math.inf))
        '≥ 60'
        >>> fmt_bounded(Bounded(0.0, 0.5), suffix="×")
        '≤ 0.5×'
    """
    if b.exact:
        return fmt_count(b.lo, digits) + (suffix if math.isfinite(b.lo) else "")
    lo_open = b.lo <= 0.0 or math.isnan(b.lo)
    if math.isinf(b.hi):
        return "?" if lo_open else f"≥ {fmt_count(b.lo, digits)}{suffix}"
    if lo_open:
        return f"≤ {fmt_count(b.hi, digits)}{suffix}"
    return f"{fmt_count(b.lo, digits)}–{fmt_count(b.hi, digits)}{suffix}"


def fmt_interval(iv: Interval | None, digits: int = 3, suffix: str = "") -> str:
    """Return ``estimate [lower, upper]`` (``—`` for no interval)."""
    if iv is None:
        return "—"
    ends = ", ".join(fmt_bounded(e, digits, suffix) for e in (iv.lower, iv.upper))
    return f"{fmt_bounded(iv.estimate, digits, suffix)} [{ends}]"
