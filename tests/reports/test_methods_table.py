"""The README's methods table is the registry's (scripts/methods_table.py)."""

from __future__ import annotations

import pytest

from clipasync.policies.registry import entries
from clipasync.reports.methods_table import (
    BEGIN,
    END,
    methods_markdown,
    readme_table,
    replace_table,
)
from tests.conftest import ROOT


def test_readme_holds_the_generated_methods_table():
    text = (ROOT / "README.md").read_text()
    assert readme_table(text) == methods_markdown(), (
        "README's methods table is stale: run python scripts/methods_table.py --write"
    )


def test_the_table_has_one_row_per_registered_method():
    rows = methods_markdown().splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == [f"| `{e.name}`" for e in entries()]
    mindflayer = next(r for r in rows if r.startswith("| `mindflayer`"))
    assert "`stepsize`, `max_norm`, `batch_size`, `time_limit`" in mindflayer
    assert mindflayer.endswith("| needs every worker (no open system) |")


def test_replace_table_keeps_the_rest_and_needs_the_markers():
    text = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_table(text, "new\n") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        replace_table("no markers", "new\n")
