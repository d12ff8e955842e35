"""The report of the tuning protocol, on synthetic run directories (issue 11).

Every expected number below is computed by hand from the synthetic scores or
independently through clipasync.diagnostics.intervals on the raw eval scores.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from clipasync.diagnostics.intervals import (
    Bounded,
    median_interval,
    ratio_of_medians_interval,
)
from clipasync.errors import ConfigError
from clipasync.experiments.analysis import analyse, run_score
from clipasync.reports.compare import compare_reports
from clipasync.reports.protocol_tables import (
    largest_converging,
    robustness_rows,
)
from clipasync.reports.report import build_report
from clipasync.reports.scaling import scaling_data
from clipasync.reports.scores import BOOTSTRAP_SEED, cell_stats
from clipasync.reports.text import fmt_bounded, fmt_interval
from tests.reports.rundirs import CAP, run_summary, write_dir

SQRT2 = math.sqrt(2)
GRID = [0.1, 0.2, 0.4, 0.8]
METHODS = {
    "clipped": {"policy": "async_sgd", "stepsize": GRID, "max_norm": [1.0]},
    "vanilla": {"policy": "async_sgd", "stepsize": GRID},
}
#: Coarse-grid first hits on tuning seeds 0, 1, 2 ("div": diverged, None: not
#: reached within the cap), per (method, D, stepsize).
TUNE: dict[tuple[str, float], dict[float, list[Any]]] = {
    ("vanilla", 1): {
        0.1: [40, 41, 42],
        0.2: [30, 31, 32],
        0.4: [25, 26, "div"],
        0.8: ["div"] * 3,
    },
    ("vanilla", 64): {
        0.1: [60, 61, 62],
        0.2: [50, "div", "div"],
        0.4: ["div"] * 3,
        0.8: ["div"] * 3,
    },
    ("clipped", 1): {
        0.1: [30, 31, 32],
        0.2: [20, 21, 22],
        0.4: [1, 2, 3],
        0.8: [12, 13, None],
    },
    ("clipped", 64): {
        0.1: [30, 31, 32],
        0.2: [20, 21, 22],
        0.4: [1, 2, 3],
        0.8: [12, 13, None],
    },
}
#: Each method's pick per D (selected on the tuning seeds, rerun on eval seeds).
PICK = {
    ("clipped", 1): 0.4,
    ("clipped", 64): 0.4,
    ("vanilla", 1): 0.2,
    ("vanilla", 64): 0.1,
}
EVAL_SEEDS = range(1000, 1020)


def _hyper(method: str, gamma: float) -> dict[str, Any]:
    h: dict[str, Any] = {"assign": "same", "delay_adaptive": False}
    if method == "clipped":
        h["max_norm"] = 1.0
    h["stepsize"] = gamma
    return h


def _eval_hits(method: str, d: float) -> list[tuple[float | None, bool]]:
    """(first hit, diverged) per evaluation seed."""
    if method == "clipped":
        start = 10.0 if d == 1 else 12.0
        return [(start + i, False) for i in range(20)]
    if d == 1:  # 15 reached (20..34), 5 stopped at the cap
        return [(20.0 + i, False) if i < 15 else (None, False) for i in range(20)]
    # D = 64: 8 reached (50..57), 8 stopped at the cap, 4 diverged
    return [(50.0 + i, False) if i < 8 else (None, i >= 16) for i in range(20)]


def _runs(drop_vanilla_08_at_1: bool = False) -> list[dict[str, Any]]:
    runs = []
    for (m, d), grid in TUNE.items():
        for gamma, hits in grid.items():
            if drop_vanilla_08_at_1 and (m, d, gamma) == ("vanilla", 1, 0.8):
                continue
            for seed, h in enumerate(hits):
                runs.append(
                    run_summary(
                        method=m,
                        hyper=_hyper(m, gamma),
                        seed=seed,
                        d=d,
                        hit=None if h in ("div", None) else float(h),
                        diverged=h == "div",
                        stage="tune",
                    )
                )
    for (m, d), gamma in PICK.items():
        for g in (gamma / SQRT2, gamma * SQRT2):
            for seed in range(3):
                runs.append(
                    run_summary(
                        method=m,
                        hyper=_hyper(m, g),
                        seed=seed,
                        d=d,
                        hit=5.0,
                        stage="refine",
                    )
                )
        for seed, (h, div) in zip(EVAL_SEEDS, _eval_hits(m, d), strict=True):
            delay = 15 if d == 1 else (1000 if seed == 1000 else 900)
            runs.append(
                run_summary(
                    method=m,
                    hyper=_hyper(m, gamma),
                    seed=seed,
                    d=d,
                    hit=h,
                    diverged=div,
                    stage="eval",
                    largest_delay=delay,
                )
            )
    return runs


def _selection(budget_vanilla: int = 4) -> dict[str, Any]:
    entries = []
    for (m, d), gamma in PICK.items():
        entries.append(
            {
                "sweep": {"timing.slow_time": d},
                "method": m,
                "budget": budget_vanilla if m == "vanilla" else 4,
                "coarse_best": _hyper(m, gamma),
                "refined": [_hyper(m, gamma / SQRT2), _hyper(m, gamma * SQRT2)],
                "pick": _hyper(m, gamma),
                "score": 16.0,
            }
        )
    return {"entries": entries}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = write_dir(
        tmp_path_factory.mktemp("protocol") / "out",
        _runs(),
        protocol=True,
        methods=METHODS,
        selection=_selection(),
    )
    build_report(out)
    return out


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _eval_sample(method: str, d: float, score: str) -> tuple[list[float], list[bool]]:
    runs = [
        run_summary(
            method=method,
            hyper=_hyper(method, PICK[(method, d)]),
            seed=s,
            d=d,
            hit=h,
            diverged=div,
            stage="eval",
        )
        for s, (h, div) in zip(EVAL_SEEDS, _eval_hits(method, d), strict=True)
    ]
    pairs = [run_score(r, score) for r in runs]
    return [v for v, _ in pairs], [c for _, c in pairs]


def _section(text: str, heading: str) -> str:
    """The text of a ``## heading`` section, up to the next one."""
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 3)
    return text[start : end if end >= 0 else len(text)]


def _table_row(text: str, *cells: str) -> list[str]:
    start = "| " + " | ".join(cells) + " |"
    rows = [line for line in text.splitlines() if line.startswith(start)]
    assert len(rows) == 1, (start, rows)
    return [c.strip() for c in rows[0].strip("|").split("|")]


def test_eval_only_medians_with_intervals(report_dir: Path) -> None:
    full = (report_dir / "report.md").read_text()
    assert "Selected and scored on the same seeds" not in full
    assert "evaluation seeds: 1000–1019 (20)" in full
    text = _section(full, "Evaluation on fresh seeds")
    # Clipped at D=1: first hits 10..29 on the 20 eval seeds (its tuning seeds hit
    # at 1, 2, 3, which must not appear): median 19.5, ranks 6 and 15 → [15, 24].
    row = _table_row(text, "D=1", "clipped")
    assert row[2:5] == ["γ=0.4, c=1", "20", "20/20 / 20/20"]
    assert row[5] == "19.5 [15, 24]"
    assert row[6] == "21.5 [17, 26]"  # robust hit = first hit + 2
    assert row[7] == "195 [150, 240]"  # updates = 10 × time
    assert row[8] == "200 [155, 245]"  # gradients = updates + 5
    # Vanilla at D=1: 20..34 reached, 5 censored at the cap (beyond the median).
    row = _table_row(text, "D=1", "vanilla")
    assert row[4] == "15/20 / 15/20"
    assert row[5] == "29.5 [25, 34]"
    # Vanilla at D=64: 8 reached, 12 censored: the median is "≥ 100"; in updates
    # the censored runs rank after the largest reached count (570).
    row = _table_row(text, "D=64", "vanilla")
    assert row[4] == "8/20 / 8/20"
    assert row[5] == "≥ 100 [55, ≥ 100]"
    assert row[7] == "≥ 570 [550, ≥ 1000]"
    # The same numbers, independently, from the raw eval scores.
    for m in ("clipped", "vanilla"):
        for d in (1, 64):
            for score, col in (("time", 5), ("updates", 7)):
                v, c = _eval_sample(m, d, score)
                expect = fmt_interval(median_interval(v, c, 0.9))
                assert _table_row(text, f"D={d}", m)[col] == expect


def test_summary_csv_has_stages_and_censored_columns(report_dir: Path) -> None:
    rows = _rows(report_dir)
    by_stage: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_stage.setdefault(r["stage"], []).append(r)
    assert len(by_stage["eval"]) == 4 and len(by_stage["tune"]) == 16
    assert len(by_stage["refine"]) == 8
    assert all(r["best"] == "1" for r in by_stage["eval"])
    assert not any(r["best"] == "1" for r in by_stage["tune"] + by_stage["refine"])
    ev = {(r["method"], float(r["timing.slow_time"])): r for r in by_stage["eval"]}
    clipped = ev[("clipped", 1.0)]
    assert clipped["seeds"] == "20"
    iv = median_interval(*_eval_sample("clipped", 1, "time"), confidence=0.9)
    assert float(clipped["time_median"]) == iv.estimate.value == 19.5
    assert float(clipped["time_lo"]) == iv.lower.value == 15.0
    assert float(clipped["time_hi"]) == iv.upper.value == 24.0
    assert clipped["time_median_censored"] == "0"
    vanilla = ev[("vanilla", 64.0)]
    assert vanilla["time_median_censored"] == "1"
    assert float(vanilla["time_median"]) == CAP
    assert vanilla["time_lo_censored"] == "0" and vanilla["time_hi_censored"] == "1"
    assert vanilla["mean_censored"] == "1" and vanilla["median_censored"] == "1"
    assert vanilla["min_censored"] == "0" and vanilla["reached"] == "8"
    assert vanilla["reached_robust"] == "8"


def test_speedups_are_ratios_of_eval_medians(report_dir: Path) -> None:
    full = (report_dir / "report.md").read_text()
    text = _section(full, "Speedup of clipped over each baseline")
    # D=1: 29.5 / 19.5; D=64: the baseline's median is censored at 100 → "≥".
    row = _table_row(text, "D=1", "time to target")
    assert row[2].startswith(f"{29.5 / 19.5:.3g}× [")
    row = _table_row(text, "D=64", "time to target")
    assert row[2].startswith(f"≥ {100 / 21.5:.3g}× [")
    # The interval, recomputed from the raw scores with the report's stream.
    for i, d in enumerate((1, 64)):
        num = _eval_sample("vanilla", d, "time")
        den = _eval_sample("clipped", d, "time")
        rng = np.random.default_rng([BOOTSTRAP_SEED, i, 1, 0])
        iv = ratio_of_medians_interval(*num, *den, rng, 0.9)
        assert _table_row(text, f"D={d}", "time to target")[2] == fmt_interval(
            iv, suffix="×"
        )
    assert "At D=64, speedup of clipped in time to target" in full


def test_selection_table_and_equal_budget_line(report_dir: Path) -> None:
    text = _section((report_dir / "report.md").read_text(), "How the configurations")
    row = _table_row(text, "D=1", "clipped", "4")
    refined = "γ=0.282843, c=1; γ=0.565685, c=1"  # 0.4 ÷ and × √2
    assert row[3:7] == ["γ=0.4, c=1", refined, "γ=0.4, c=1", "16"]
    assert (
        "Budget check: equal — every method had 4 coarse grid points at each sweep "
        "point" in text
    )


def test_unequal_budgets_are_flagged(tmp_path: Path) -> None:
    out = write_dir(
        tmp_path / "u",
        _runs(drop_vanilla_08_at_1=True),
        protocol=True,
        methods=METHODS,
        selection=_selection(),
    )
    build_report(out)
    text = (out / "report.md").read_text()
    assert "UNEQUAL coarse budgets (D=1: clipped 4, vanilla 3)" in text
    assert "selection.json's budget differs from the runs for vanilla at D=1" in text


def test_robustness_table_by_hand(report_dir: Path) -> None:
    config = yaml.safe_load((report_dir / "config.resolved.yaml").read_text())
    tune = [r for r in _runs() if r["stage"] == "tune"]
    tuned = analyse(tune, config)
    # vanilla D=1: 0.1 and 0.2 reach on every seed, 0.4 diverges once, 0.8 always.
    assert largest_converging(tuned, (1,), "vanilla") == 0.2
    assert largest_converging(tuned, (64,), "vanilla") == 0.1
    # clipped: 0.8 misses the target on seed 2 (not a divergence), so 0.4.
    assert largest_converging(tuned, (1,), "clipped") == 0.4
    rows = {(r[0], r[1]): r for r in robustness_rows(tuned)}
    cells = rows[("D=1", "vanilla")][3]
    assert cells == "0.1: 41 · 0.2: 31 · 0.4: 26 (1/3 diverged) · 0.8: diverged"
    assert rows[("D=1", "clipped")][3].endswith("0.8: 13")
    assert rows[("D=1", "clipped")][4] == "0.4"
    text = _section((report_dir / "report.md").read_text(), "Robustness")
    row = _table_row(text, "D=1", "vanilla")
    assert row[2:] == ["—", cells, "0.2"]


def test_theory_beside_the_measurement(report_dir: Path) -> None:
    config = yaml.safe_load((report_dir / "config.resolved.yaml").read_text())
    evals = [r for r in _runs() if r["stage"] == "eval"]
    a = analyse(evals, config)
    data = scaling_data(a, cell_stats(a, 0.9))
    assert data is not None
    # τ_max per sweep point: the largest `largest_delay` of its eval runs.
    assert data.tau_max.tolist() == [15.0, 1000.0]
    assert data.tau_c.tolist() == [16.0, 16.0]
    assert [name for name, _ in data.panels()] == ["largest observed delay τ_max"]
    # Normalised at D=1 (median updates 195 clipped, 295 vanilla): clipped flat in
    # τ_max at fixed τ_C, vanilla ∝ τ_max.
    assert data.theory["clipped"].tolist() == pytest.approx([195.0, 195.0])
    assert data.theory["vanilla"].tolist() == pytest.approx([295.0, 295.0 * 1000 / 15])
    y, _, _, censored = data.measured["vanilla"]
    assert y.tolist() == [295.0, 570.0] and censored.tolist() == [False, True]
    text = (report_dir / "report.md").read_text()
    assert "![scaling](scaling.png)" in text and "constants omitted" in text
    assert (report_dir / "scaling.png").is_file()
    assert (report_dir / "headline.png").is_file()


def test_legacy_report_keeps_its_tables_under_a_banner(tmp_path: Path) -> None:
    runs = [
        run_summary(
            method=m,
            hyper=_hyper(m, 0.2),
            seed=seed,
            d=d,
            hit=None if (m == "vanilla" and d == 64 and seed == 2) else 10.0 + seed,
            stage=None,
        )
        for m in ("clipped", "vanilla")
        for d in (1, 64)
        for seed in range(3)
    ]
    out = write_dir(tmp_path / "legacy", runs, protocol=False, methods=METHODS)
    build_report(out)
    text = (out / "report.md").read_text()
    assert "Selected and scored on the same seeds" in text
    # Vanilla at D=64: seeds 10, 11 and the cap 100 → mean 40.3, a lower bound.
    row = _table_row(_section(text, "Best configuration per method"), "D=64", "vanilla")
    assert row[2].startswith("≥ 40.3 ± ")
    # Speedup of means: the baseline's mean is a lower bound → "≥".
    row = _table_row(_section(text, "Speedup of clipped"), "D=64")
    assert row[1] == f"≥ {40.333333 / 11:.3g}×"
    assert "## Evaluation on fresh seeds" not in text
    rows = _rows(out)
    v64 = next(
        r for r in rows if r["method"] == "vanilla" and r["timing.slow_time"] == "64"
    )
    assert v64["mean_censored"] == "1" and v64["median_censored"] == "0"
    assert float(v64["updates_median"]) == 110.0  # legacy: version at the target


def test_protocol_without_eval_runs_is_an_error(tmp_path: Path) -> None:
    runs = [r for r in _runs() if r["stage"] == "tune"]
    out = write_dir(tmp_path / "t", runs, protocol=True, methods=METHODS)
    with pytest.raises(ConfigError, match="no finished evaluation runs"):
        build_report(out)


def test_text_of_bounds() -> None:
    assert fmt_bounded(Bounded(60.0, math.inf)) == "≥ 60"
    assert fmt_bounded(Bounded(0.0, 0.25), suffix="×") == "≤ 0.25×"
    assert fmt_bounded(Bounded(0.0, math.inf)) == "?"
    assert fmt_bounded(Bounded(3217.0, 3217.0)) == "3217"
    assert fmt_bounded(Bounded(1.2, 1.5)) == "1.2–1.5"
    assert fmt_bounded(Bounded(-math.inf, -math.inf)) == "−∞"
    assert fmt_interval(None) == "—"


def test_compare_reads_eval_medians_and_bounds(report_dir: Path) -> None:
    table, _ = compare_reports([report_dir])
    # D=64: vanilla's eval median is censored at 100, clipped's is 21.5.
    assert "| synthetic | D=64 | clipped | 21.5 (20/20) | ≥ 4.65× |" in table
    assert f"| synthetic | D=1 | clipped | 19.5 (20/20) | {29.5 / 19.5:.3g}× |" in table


def test_theory_against_the_number_of_workers() -> None:
    """A sweep of n: τ_C = n + 1 varies, so clipped and delay-adaptive ASGD's
    bounds grow ∝ τ_C and vanilla's ∝ τ_max (both normalised at n = 3)."""
    methods = {
        "clipped": _hyper("clipped", 0.4),
        "vanilla": _hyper("vanilla", 0.2),
        "adaptive": {**_hyper("vanilla", 0.2), "delay_adaptive": True},
    }
    runs = []
    for n_fast, tau in ((3, 6), (15, 30), (63, 120)):
        for m, hyper in methods.items():
            for seed in range(5):
                r = run_summary(
                    method=m,
                    hyper=hyper,
                    seed=seed,
                    d=8,
                    hit=10.0 + seed,
                    stage="eval",
                    largest_delay=tau,
                )
                r["sweep"] = {"timing.num_fast": n_fast}
                r["timing"]["num_fast"] = n_fast
                runs.append(r)
    config = {
        "name": "workers",
        "sweep": {"timing.num_fast": [3, 15, 63]},
        "methods": {m: {"policy": "async_sgd"} for m in methods},
        "reference": "clipped",
        "stop": {"max_time": CAP, "target": {"metric": "loss", "value": 0.05}},
    }
    a = analyse(runs, config)
    data = scaling_data(a, cell_stats(a, 0.9))
    assert data is not None
    assert data.tau_c.tolist() == [4.0, 16.0, 64.0]
    assert data.tau_max.tolist() == [6.0, 30.0, 120.0]
    assert len(data.panels()) == 2
    y0 = 120.0  # median updates: 10 × median(10..14)
    assert data.theory["clipped"].tolist() == pytest.approx([y0, 4 * y0, 16 * y0])
    assert data.theory["adaptive"].tolist() == pytest.approx([y0, 4 * y0, 16 * y0])
    assert data.theory["vanilla"].tolist() == pytest.approx([y0, 5 * y0, 20 * y0])
