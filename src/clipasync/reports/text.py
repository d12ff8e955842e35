"""Text helpers shared by the report's modules: numbers, ratios and markdown tables
(a grid point's text is :func:`clipasync.policies.registry.label`)."""

from __future__ import annotations

import math
from typing import Any

from clipasync.engine import MINIMISED


def direction(metric: str) -> str:
    """Return how a target on ``metric`` reads: ``≤`` if minimised, else ``≥``."""
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
