"""The paper-reproduction configs: profiles and their one-line errors."""

from __future__ import annotations

import pytest

from clipasync.errors import ConfigError
from clipasync.experiments import expand, load_config
from tests.conftest import ROOT

EXPERIMENTS = ROOT / "experiments"
PAPER_CONFIGS = [
    "paper_fig2_fashion_mnist.yaml",
    "paper_fig3_kjv_lstm.yaml",
    "paper_fig4_label_skew.yaml",
]


@pytest.mark.parametrize("name", PAPER_CONFIGS)
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_paper_config_loads_with_each_profile(name: str, profile: str) -> None:
    cfg = load_config(EXPERIMENTS / name, profile=profile)
    assert cfg.profile == profile
    assert cfg.problem.name in ("fashion_mnist_cnn", "kjv_char_lstm")
    assert cfg.stop.target is not None and cfg.stop.max_time is not None
    assert cfg.paper_reference and cfg.diagnostics and cfg.diagnostics.tail_index
    assert cfg.timing.num_fast == 8 and cfg.timing.num_slow == 8
    specs = expand(cfg)
    assert specs
    if profile == "full":
        assert cfg.seeds == [0, 1, 2]
        assert cfg.sweep == {"timing.slow_time": [4, 8]}
        clipped = cfg.methods[cfg.reference_method or ""]
        assert clipped.max_norm is not None and len(clipped.max_norm) == 4
        assert len(clipped.stepsize) >= 7
    else:
        assert len(specs) <= 24


def test_default_profile_is_quick_and_set_overrides_profile() -> None:
    path = EXPERIMENTS / "paper_fig2_fashion_mnist.yaml"
    assert load_config(path).profile == "quick"
    cfg = load_config(path, ["seeds=[5]"], profile="full")
    assert cfg.seeds == [5] and cfg.profile == "full"


def test_unknown_profile_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        load_config(EXPERIMENTS / "paper_fig2_fashion_mnist.yaml", profile="huge")
