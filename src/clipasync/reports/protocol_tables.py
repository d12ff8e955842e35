"""The tuning protocol's own tables: how each configuration was selected, whether
the budgets were equal, and how robust each method is to its stepsize.

Selection (``selection.json`` at the top of the run directory, written by the
runner): one entry per (sweep point, method)::

    {"entries": [{"sweep": {"timing.slow_time": 4}, "method": "clipped",
                  "budget": 8, "coarse_best": {...}, "refined": [{...}, ...],
                  "pick": {...}, "score": 21.0}, ...]}

``budget`` is the number of coarse grid points (also read: ``coarse_points``),
``coarse_best``/``pick`` are grid points as in a run's ``hyper`` (``pick`` also read
as ``final`` or ``selected``), ``refined`` the refined points (also
``refined_grid``), ``score`` the pick's median tuning score (also
``tuning_score``; ``null``: never confirmed the target, +∞). A top-level list of
entries is read too.

Robustness (the ``tune`` runs: the coarse grid on the tuning seeds): per (sweep
point, method, value of its other axes), the tuning-seed median time to target at
each stepsize (or effective step γ·c when the grid is in it), "diverged" when every
seed diverged, and the largest stepsize that reached the target on every tuning
seed without diverging. Erickson & Johansson (2026, arXiv 2606.13287, Sec. 6) tune
each method's stepsize on a grid; this table shows how much of the grid works.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clipasync.diagnostics.intervals import sample_quantile
from clipasync.experiments.analysis import (
    Analysis,
    Cell,
    fmt_value,
    score_sample,
    short_key,
)
from clipasync.policies.registry import label as hyper_label
from clipasync.reports.text import fmt_bounded, fmt_count, markdown_table

SELECTION_FILE = "selection.json"


def _first(entry: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        if n in entry:
            return entry[n]
    return None


def read_selection(out: Path) -> list[dict[str, Any]] | None:
    """Return the entries of ``selection.json`` (``None`` if absent or unreadable)."""
    path = out / SELECTION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict):
        data = _first(data, "entries", "selections") or [
            v for v in data.values() if isinstance(v, dict) and "method" in v
        ]
    if not isinstance(data, list):
        return None
    return [e for e in data if isinstance(e, dict) and "method" in e]


def _policy(a: Analysis, method: str, entry: Mapping[str, Any]) -> str:
    if entry.get("policy"):
        return str(entry["policy"])
    spec = (a.config.get("methods") or {}).get(method) or {}
    return str(spec.get("policy", ""))


def _hyper_text(policy: str, hyper: Any) -> str:
    # A candidate of the runner's selection.json carries its grid point under
    # ``hyper`` (with its scores and run ids); a bare grid point is read as is.
    if isinstance(hyper, dict) and isinstance(hyper.get("hyper"), dict):
        hyper = hyper["hyper"]
    if not isinstance(hyper, dict) or not hyper:
        return "—"
    return hyper_label(policy, hyper)


def _score_text(entry: Mapping[str, Any]) -> str:
    score = _first(entry, "score", "tuning_score")
    if score is None:
        return "never confirmed (∞)"
    text = fmt_count(float(score))
    return f"≥ {text}" if entry.get("score_censored") else text


def _point(a: Analysis, entry: Mapping[str, Any]) -> tuple[Any, ...]:
    sweep = entry.get("sweep") or {}
    return tuple(sweep.get(k) for k in a.sweep_keys)


def selection_table(a: Analysis, entries: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of ``selection.json``: per (sweep point, method), the coarse
    budget and best, the refined points, the pick and its tuning score."""
    select_by = str((a.config.get("protocol") or {}).get("select_by", "time"))
    rows = []
    for e in entries:
        m = str(e["method"])
        policy = _policy(a, m, e)
        refined = _first(e, "refined", "refined_grid") or []
        budget = _first(e, "budget", "coarse_points")
        rows.append(
            [
                a.point_label(_point(a, e)),
                m,
                str(budget) if budget is not None else "—",
                _hyper_text(policy, e.get("coarse_best")),
                "; ".join(_hyper_text(policy, h) for h in refined) or "none",
                _hyper_text(policy, _first(e, "pick", "final", "selected")),
                _score_text(e),
            ]
        )
    header = ["sweep", "method", "coarse budget", "coarse best", "refined points"]
    header += ["pick", f"tuning score ({select_by}, median)"]
    return markdown_table(header, rows)


def budget_check(
    a: Analysis,
    counted: Mapping[tuple[tuple[Any, ...], str], int],
    entries: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """One line: whether every method had the same number of coarse grid points at
    every sweep point (``counted``: from the tune runs), and whether
    ``selection.json``'s budgets agree."""
    unequal = []
    for p in a.points:
        sizes = {m: counted[(p, m)] for m in a.methods if (p, m) in counted}
        if len(set(sizes.values())) > 1:
            shown = ", ".join(f"{m} {k}" for m, k in sizes.items())
            unequal.append(f"{a.point_label(p)}: {shown}")
    if not counted:
        line = "Budget check: no tune runs found."
    elif unequal:
        line = "Budget check: UNEQUAL coarse budgets (" + "; ".join(unequal) + ")."
    else:
        distinct = sorted(set(counted.values()))
        line = (
            "Budget check: equal — every method had "
            f"{' / '.join(map(str, distinct))} coarse grid points at each sweep point "
            "(counted from the tune runs)."
        )
    mismatched = []
    for e in entries or []:
        budget = _first(e, "budget", "coarse_points")
        key = (_point(a, e), str(e["method"]))
        if budget is not None and key in counted and int(budget) != counted[key]:
            mismatched.append(f"{e['method']} at {a.point_label(key[0])}")
    if mismatched:
        line += " selection.json's budget differs from the runs for " + ", ".join(
            mismatched
        )
        line += "."
    return line


def _axis(cells: Sequence[Cell]) -> str:
    if any(c.hyper.get("effective_step") is not None for c in cells):
        return "effective_step"
    return "stepsize"


def _other_axes(hyper: Mapping[str, Any], axis: str) -> dict[str, Any]:
    drop = {axis, "stepsize"}
    if hyper.get("noise_quantile") is not None:
        drop.add("max_norm")  # derived from the quantile
    return {k: v for k, v in hyper.items() if k not in drop}


def converged(cell: Cell) -> bool:
    """True when every seed reached the target and none diverged."""
    return all(
        r.get("reached") and r.get("stop_reason") != "diverged" for r in cell.runs
    )


def _cell_text(cell: Cell) -> str:
    n, div = len(cell.runs), cell.diverged
    if n and div == n:
        return "diverged"
    values, censored = score_sample(cell.runs, "time")
    text = fmt_bounded(sample_quantile(values, censored)) if values.size else "—"
    return text + (f" ({div}/{n} diverged)" if div else "")


def robustness_rows(tuned: Analysis) -> list[list[str]]:
    """Rows of the robustness table from an analysis of the ``tune`` runs."""
    rows: list[list[str]] = []
    for p in tuned.points:
        for m in tuned.methods:
            cells = [c for c in tuned.cells if c.point == p and c.method == m]
            if not cells:
                continue
            axis = _axis(cells)
            groups: dict[str, list[Cell]] = {}
            for c in cells:
                key = json.dumps(_other_axes(c.hyper, axis), sort_keys=True)
                groups.setdefault(key, []).append(c)
            varying = {
                k
                for c in cells
                for k, v in _other_axes(c.hyper, axis).items()
                if any(_other_axes(d.hyper, axis).get(k) != v for d in cells)
            }
            for members in groups.values():
                members.sort(key=lambda c: float(c.hyper.get(axis) or 0.0))
                others = _other_axes(members[0].hyper, axis)
                label = ", ".join(
                    f"{short_key(k)}={fmt_value(others[k])}"
                    for k in others
                    if k in varying
                )
                ok = [float(c.hyper[axis]) for c in members if converged(c)]
                rows.append(
                    [
                        tuned.point_label(p),
                        m,
                        label or "—",
                        " · ".join(
                            f"{fmt_value(c.hyper.get(axis))}: {_cell_text(c)}"
                            for c in members
                        ),
                        fmt_value(max(ok)) if ok else "none",
                    ]
                )
    return rows


def robustness_table(tuned: Analysis) -> str:
    """Markdown table of :func:`robustness_rows` (see the module docstring)."""
    cells = list(tuned.cells)
    axis = "effective step γ·c" if _axis(cells) == "effective_step" else "stepsize γ"
    return markdown_table(
        [
            "sweep",
            "method",
            "other axes",
            f"{axis}: tuning-seed median time to target",
            f"largest {axis.split()[-1]} converging on every tuning seed",
        ],
        robustness_rows(tuned),
    )


def largest_converging(
    tuned: Analysis, point: tuple[Any, ...], method: str
) -> float | None:
    """The largest stepsize (or effective step) of a method's coarse grid at a sweep
    point that converged on every tuning seed (``None``: none did)."""
    cells = [c for c in tuned.cells if c.point == point and c.method == method]
    axis = _axis(cells)
    ok = [float(c.hyper[axis]) for c in cells if converged(c)]
    return max(ok) if ok else None
