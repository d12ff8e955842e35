"""First and robust hits (``stop.target.confirm``), the ``arrivals`` of evaluation
rows, and the summary fields built from them."""

from __future__ import annotations

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, Target, run
from clipasync.errors import ConfigError
from clipasync.experiments import expand, load_config
from clipasync.experiments.execute import execute
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import scale
from tests.conftest import ROOT, noisy_quadratic_grad

QUICK = ROOT / "experiments" / "quick.yaml"

#: Loss at evaluation times 0, 1, 2, ... (the model is ignored), target 1.0:
#: at/below the target at t = 1, 3, 4, 6, 7, 8, 9.
SCRIPT = [5.0, 0.9, 2.0, 0.8, 0.7, 3.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]


def _scripted_run(confirm: int, max_time: float = 100.0) -> RunResult:
    losses = iter(SCRIPT)
    pool = SimulatedPool(FixedTimes((1.0,) * 4), noisy_quadratic_grad, seed=0)
    return run(
        AsyncSGD(scale(0.01)),
        pool,
        np.zeros(3),
        stop=StopRule(max_time=max_time, target=Target("loss", 1.0, confirm)),
        rng=np.random.default_rng(0),
        evaluate=lambda x: {"loss": next(losses)},
        eval_every=1.0,
    )


@pytest.mark.parametrize(
    ("confirm", "first", "robust", "last_eval"),
    [
        (1, 1.0, 1.0, 1.0),  # today's rule: stop at the first hit
        (2, 1.0, 3.0, 4.0),  # streaks: {1}, {3, 4} -> confirmed at 4
        (3, 1.0, 6.0, 8.0),  # {1}, {3, 4}, {6, 7, 8} -> confirmed at 8
        (4, 1.0, 6.0, 9.0),
    ],
)
def test_robust_hit_is_the_start_of_the_first_confirm_streak(
    confirm: int, first: float, robust: float, last_eval: float
) -> None:
    res = _scripted_run(confirm)
    assert res.stop_reason == "target"
    assert res.time_to_target == res.first_hit == first
    assert res.robust_hit == robust
    assert res.recorder.evals[-1]["time"] == last_eval  # stops after the streak
    assert [e["loss"] for e in res.recorder.evals] == SCRIPT[: int(last_eval) + 1]


def test_an_unconfirmed_target_keeps_the_first_hit_and_no_robust_hit() -> None:
    # Budget ends at t = 5: hits at 1, 3, 4 but no streak of 3.
    res = _scripted_run(3, max_time=5.5)
    assert res.stop_reason == "max_time"
    assert res.time_to_target == 1.0
    assert res.robust_hit is None


def test_evaluation_rows_count_the_arrivals_before_them() -> None:
    # 4 workers at time 1: arrivals at 1, 2, ...; the evaluation at t sees the
    # model after the arrivals strictly before t, so 4 (t - 1) arrivals.
    res = _scripted_run(3)
    arrivals = [e["arrivals"] for e in res.recorder.evals]
    assert arrivals == [0.0, 0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0]
    assert [e["version"] for e in res.recorder.evals] == arrivals  # all applied


def test_confirm_must_be_a_positive_integer() -> None:
    with pytest.raises(ConfigError, match="confirm must be an integer >= 1"):
        Target("loss", 1.0, 0)


def test_default_confirm_reproduces_the_quick_experiments_first_run() -> None:
    # Measured before ``confirm`` existed: the first run of experiments/quick.yaml
    # reached the target at t = 22 after 84 updates (84 arrivals, all applied),
    # with this run id.
    spec = expand(load_config(QUICK))[0]
    assert spec.run_id == "clipped-slow_time1-g0.5-c1-s0-3d0a1e82"
    s = execute(spec).summary
    assert s["stop_reason"] == "target"
    assert s["time_to_target"] == s["first_hit"] == s["robust_hit"] == 22.0
    assert s["version"] == s["updates_to_target"] == s["updates_to_robust"] == 84
    assert s["gradients_to_target"] == s["counts"]["arrivals"] == 84
    assert s["censor_time"] is None and s["confirm"] == 1
    assert "stage" not in s  # no protocol: a legacy run


def test_summary_of_an_unreached_run_is_censored_at_its_stop() -> None:
    # quick.yaml at D=4 with stepsize 0.25 never reaches the target by t = 60.
    specs = expand(load_config(QUICK))
    spec = next(
        s for s in specs if s.run_id.startswith("clipped-slow_time4-g0.25-c1-s0")
    )
    s = execute(spec).summary
    assert s["stop_reason"] == "max_time"
    assert s["first_hit"] is None and s["robust_hit"] is None
    assert s["updates_to_target"] is None and s["gradients_to_robust"] is None
    assert s["censor_time"] == s["sim_time"] == 60.0


def test_confirm_in_the_config_reaches_the_runs() -> None:
    cfg = load_config(QUICK, ["stop.target.confirm=3"])
    spec = expand(cfg)[0]
    assert spec.stop["target"]["confirm"] == 3
    s = execute(spec).summary
    assert s["confirm"] == 3
    assert s["first_hit"] == 22.0  # the first hit is unchanged
    assert s["robust_hit"] is not None and s["robust_hit"] >= 22.0
    assert s["sim_time"] >= s["robust_hit"] + 2.0  # two more evaluations confirm it
    # Unset, confirm stays out of the settings (the run ids of earlier versions).
    assert "confirm" not in expand(load_config(QUICK))[0].stop["target"]
