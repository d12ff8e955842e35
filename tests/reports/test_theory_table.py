"""The theory table (clipasync.reports.theory_table) of the paper's setting."""

from __future__ import annotations

import pytest

from clipasync.reports.theory_table import format_theory_report, theory_rows
from clipasync.theory import (
    TheoryReport,
    theory_report,
)


def test_theory_report_for_the_paper_setting() -> None:
    report = theory_report(
        [1.0] * 8 + [4.0] * 8, L=1.0, delta=1.0, sigma=1.0, theta=2.71, eps=0.1
    )
    assert isinstance(report, TheoryReport)
    assert report.concurrency == 16
    assert report.max_delay == 39.0  # 8D + 7
    assert report.update_rate == pytest.approx(10.0)
    rows = theory_rows(report)
    values = {name: value for name, value, _ in rows}
    assert values["concurrency tau_C"] == "16"
    assert values["max delay tau_max"] == "39"
    assert values["update rate sum 1/tau_i"] == "10"
    # Time = updates / rate: the clipped T over λ = 10.
    assert float(values["clipped: time T/rate"]) == pytest.approx(
        report.clipped.num_updates / 10.0, rel=1e-3
    )
    text = format_theory_report(report)
    lines = text.splitlines()
    assert lines[0].startswith("quantity") and set(lines[1]) == {"-"}
    assert len(lines[1]) == max(len(line) for line in lines)
    assert len(lines) == 2 + len(rows)
    # Values are right-aligned under the header "value".
    header_end = lines[0].index("value") + len("value")
    for line, (name, value, source) in zip(lines[2:], rows, strict=True):
        assert line.startswith(name)
        assert line.index(value, len(name)) + len(value) == header_end
        assert line.endswith(source)
    assert "audit constants" in text
