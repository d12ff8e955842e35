"""The high-probability study narrows a grid to each method's best point."""

from __future__ import annotations

from clipasync.experiments.loading import load_config
from clipasync.reports.hp import narrowed_config
from tests.conftest import ROOT


def test_a_relative_grid_narrows_to_the_resolved_numbers() -> None:
    """The demo's clipped method is written in effective step and noise quantile;
    its best point is a number pair (stepsize, max_norm), and the narrowed method
    keeps exactly that one point."""
    cfg = load_config(ROOT / "experiments" / "stragglers.yaml")
    best = {
        "clipped": {"stepsize": 0.5, "max_norm": 0.05, "effective_step": 0.025},
        "vanilla": {"stepsize": 0.25},
    }
    narrowed = narrowed_config(cfg, best, seeds=4, seed_offset=1000)
    assert narrowed.seeds == [1000, 1001, 1002, 1003]
    assert set(narrowed.methods) == {"clipped", "vanilla"}
    (clipped,) = narrowed.methods["clipped"].points()
    assert (clipped.stepsize, clipped.max_norm) == (0.5, 0.05)
    (vanilla,) = narrowed.methods["vanilla"].points()
    assert (vanilla.stepsize, vanilla.max_norm) == (0.25, None)
