"""experiments/all_methods.yaml runs every registered method."""

from __future__ import annotations

from clipasync.experiments import load_config
from clipasync.policies.registry import names
from tests.conftest import ROOT


def test_every_registered_policy_has_a_method_in_all_methods_yaml():
    cfg = load_config(ROOT / "experiments" / "all_methods.yaml")
    missing = set(names()) - {m.policy for m in cfg.methods.values()}
    assert not missing, f"add a method for {sorted(missing)} to all_methods.yaml"
    assert cfg.protocol is not None and cfg.protocol.equal_budget
    assert {m.grid_size() for m in cfg.methods.values()} == {2}
    # The straggler benchmark's setting: 15 workers at 1, one straggler at D.
    assert (cfg.timing.num_fast, cfg.timing.num_slow) == (15, 1)
