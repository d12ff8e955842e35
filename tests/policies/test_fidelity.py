"""Fidelity options of Rennala and Ringmaster: each changes what it says and nothing
else, against hand-derived schedules on fixed compute times (ties by start order)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from clipasync.engine import RunResult, StopRule, run
from clipasync.policies.async_sgd import AsyncSGD
from clipasync.policies.params import RennalaParams, RingmasterParams
from clipasync.policies.registry import label, lookup
from clipasync.policies.rennala import Rennala, SyncMinibatch
from clipasync.policies.ringmaster import Ringmaster
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes, random_times
from clipasync.transforms import chain, clip_by_norm, scale
from tests.conftest import ROOT, diag_quadratic_grad, noisy_quadratic_grad


def _run(policy: object, times: tuple[float, ...], stop: StopRule) -> RunResult:
    pool = SimulatedPool(FixedTimes(times), diag_quadratic_grad, seed=0)
    return run(policy, pool, np.ones(2), stop=stop, rng=np.random.default_rng(0))  # type: ignore[arg-type]


def _step_times(res: RunResult) -> list[float]:
    a = res.recorder.arrival_arrays()
    return a["time"][a["applied"]].tolist()


# --- Rennala ------------------------------------------------------------------


def test_rennala_default_is_the_papers_rule_step_count_by_hand():
    # n = 2 workers at fixed times (1, 1.5), B = 2, until T = 7.5.
    # Paper (stale jobs finish, are ignored, their worker restarts at x_k):
    #   t=1 w0@v0 (1/2) → w0 again at v0; t=1.5 w1@v0 (2/2) → step 1, w1 at v1;
    #   t=2 w0@v0 stale → w0 at v1; t=3 w1@v1 (1/2, started 1.5 before w0's 2),
    #   w0@v1 (2/2) → step 2, w0 at v2 (due 4); w1 at v1 (due 4.5);
    #   t=4 w0@v2 (1/2); t=4.5 w1@v1 stale → v2 (due 6); t=5 w0@v2 (2/2) → step 3,
    #   w0 at v3 (due 6); t=6 w1@v2 stale (started 4.5, first) → v3 (due 7.5),
    #   w0@v3 (1/2, due 7); t=7 w0 (2/2) → step 4; t=7.5 w1@v3 stale.
    # Steps at 1.5, 3, 5, 7: four in T = 7.5, four stale gradients discarded.
    res = _run(Rennala(scale(0.5), batch_size=2), (1.0, 1.5), StopRule(max_time=7.5))
    assert _step_times(res) == [1.5, 3.0, 5.0, 7.0]
    assert res.counts["discarded"] == 4 and res.counts["cancelled"] == 0
    # Cancelling restarts both workers at each step: one step per 1.5 units, five,
    # each cancelling w0's job begun half a unit before.
    res = _run(
        Rennala(scale(0.5), batch_size=2, cancel_stale=True),
        (1.0, 1.5),
        StopRule(max_time=7.5),
    )
    assert _step_times(res) == [1.5, 3.0, 4.5, 6.0, 7.5]
    assert res.counts["discarded"] == 0 and res.counts["cancelled"] == 5


def test_rennala_variant_is_a_yaml_option_and_old_records_read_as_cancelling():
    entry = lookup("rennala")
    assert "cancel_stale" in entry.fields
    assert RennalaParams(stepsize=1.0, batch_size=2).cancel_stale is False
    assert (
        entry.build(RennalaParams(stepsize=1.0, batch_size=2)).to_config()[
            "cancel_stale"
        ]
        is False
    )
    # A run record written before the option existed ran the cancelling variant.
    old = {"batch_size": 16, "delay_adaptive": False, "max_norm": None, "stepsize": 1.0}
    assert entry.from_hyper(old).cancel_stale is True
    assert label("rennala", old) == "γ=1, B=16, cancel stale"
    new = entry.to_hyper(RennalaParams(stepsize=1.0, batch_size=16))
    assert new["cancel_stale"] is False and entry.from_hyper(new).cancel_stale is False
    assert label("rennala", new) == "γ=1, B=16"


def test_kept_rennala_results_load_as_the_variant_they_ran():
    # The demo's kept runs use the paper's rule; its control cancels stale jobs.
    kept = (
        ("stragglers", "rennala-*", False),
        ("controls_rennala_cancel", "rennala_cancel-*", True),
    )
    for folder, pattern, cancels in kept:
        runs = sorted((ROOT / "results" / folder / "runs").glob(pattern))
        assert runs, f"results/{folder} keeps Rennala runs"
        for d in runs[:3]:
            hyper = json.loads((d / "summary.json").read_text())["hyper"]
            assert hyper["cancel_stale"] is cancels
            assert lookup("rennala").from_hyper(hyper).cancel_stale is cancels


# --- Ringmaster ---------------------------------------------------------------

TIMES = (1.0, 2.5, 2.5)


def test_ringmaster_delay_over_arrivals_by_hand():
    # R = 3, times (1, 2.5, 2.5). Applied updates (k − v):
    #   t=1 w0 d0 ✓, t=2 w0 d0 ✓, t=2.5 w1 d2 ✓ (w1 restarts at v3), w2 d3 ✗,
    #   t=3 w0 d1 ✓, t=4 w0 d0 ✓, t=5 w1 (v3 at version 5) d2 ✓, w2 d3 ✗, w0 d1 ✓.
    # Over arrivals, the discard of w2 at t=2.5 counts too: w1's job from arrival 3
    # meets arrivals 4, 5, 6 before it lands at t=5: delay 3, discarded.
    stop = StopRule(max_arrivals=9)
    a = _run(Ringmaster(scale(0.5), max_delay=3), TIMES, stop)
    b = _run(Ringmaster(scale(0.5), max_delay=3, delay_count="arrivals"), TIMES, stop)
    ra, rb = a.recorder.arrival_arrays(), b.recorder.arrival_arrays()
    applied = [True, True, True, False, True, True, True, False, True]
    assert ra["applied"].tolist() == applied
    assert rb["applied"].tolist() == [*applied[:6], False, False, True]
    # Nothing else moves: the same arrivals at the same times, the iterates equal
    # until the first difference.
    for col in ("time", "worker", "job", "compute_time"):
        np.testing.assert_array_equal(ra[col], rb[col], err_msg=col)
    np.testing.assert_array_equal(ra["delay"][:6], rb["delay"][:6])


def test_ringmaster_delay_count_default_keeps_records_and_run_ids():
    p = RingmasterParams(stepsize=0.5, max_delay=3)
    assert "delay_count" not in lookup("ringmaster").to_hyper(p)
    explicit = RingmasterParams(stepsize=0.5, max_delay=3, delay_count="applied")
    for pol in (lookup("ringmaster").build(p), lookup("ringmaster").build(explicit)):
        assert pol.to_config() == {
            "policy": "Ringmaster",
            "max_delay": 3,
            "cancel_stale": False,
        }
    arr = RingmasterParams(stepsize=0.5, max_delay=3, delay_count="arrivals")
    assert lookup("ringmaster").to_hyper(arr)["delay_count"] == "arrivals"
    assert label("ringmaster", lookup("ringmaster").to_hyper(arr)).endswith(
        "delay over arrivals"
    )


def test_ringmaster_cancel_over_arrivals_counts_discards():
    # Times (1, 1, 10), R = 2, cancelling. Over applied updates w2's job (version 0)
    # is cancelled once version 2 is reached (t=1, second arrival) and again at
    # every second update; over arrivals the same here, as no arrival is discarded:
    # the two counts agree when nothing is discarded.
    stop = StopRule(max_time=6.0)
    a = _run(Ringmaster(scale(0.1), max_delay=2, cancel_stale=True), (1, 1, 10), stop)
    b = _run(
        Ringmaster(scale(0.1), max_delay=2, cancel_stale=True, delay_count="arrivals"),
        (1, 1, 10),
        stop,
    )
    assert a.counts == b.counts
    np.testing.assert_array_equal(a.params, b.params)
    assert a.counts["cancelled"] > 0 and a.counts["discarded"] == 0


# --- defaults keep the records of before --------------------------------------

FIXED_COLUMNS = (
    "time",
    "job",
    "worker",
    "version",
    "delay",
    "applied",
    "discarded",
    "skipped",
    "pre_clip_norm",
    "clipped",
    "stepsize",
    "compute_time",
)

#: Digests of the fixed arrival columns and the final iterate of 300 arrivals, as
#: written by the code before these options existed (commit b7088b2, rerun with
#: these portable digests); Rennala's
#: old default is the cancelling variant.
BEFORE = {
    "async": (
        lambda: AsyncSGD(chain(clip_by_norm(1.0), scale(0.05)), assign="random"),
        ("96f47adc0ef5db43", "6b35d0ec83442833"),
    ),
    "ringmaster": (
        lambda: Ringmaster(scale(0.05), max_delay=3),
        ("acae5caa0a5e5ec7", "13429a928b8b6329"),
    ),
    "ringmaster_cancel": (
        lambda: Ringmaster(scale(0.05), max_delay=3, cancel_stale=True),
        ("bc3d6c033ceda453", "95cc64fcbfab0ca0"),
    ),
    "minibatch": (
        lambda: SyncMinibatch(scale(0.05)),
        ("7a31895d4a562e0b", "8c1f3d0ff47744cd"),
    ),
    "rennala_cancel": (
        lambda: Rennala(scale(0.05), batch_size=3, cancel_stale=True),
        ("8c0e88c508f9a372", "31acc7cde11ba826"),
    ),
}


def _digest(policy: object, timing: object) -> str:
    pool = SimulatedPool(timing, noisy_quadratic_grad, seed=3)  # type: ignore[arg-type]
    res = run(
        policy,  # type: ignore[arg-type]
        pool,
        np.ones(3),
        stop=StopRule(max_arrivals=300),
        rng=np.random.default_rng(3),
    )
    a = res.recorder.arrival_arrays()
    h = hashlib.sha256()
    for col in FIXED_COLUMNS:
        h.update(_portable(a[col]))
    h.update(_portable(res.params))
    return h.hexdigest()[:16]


def _portable(values: object) -> bytes:
    """The bytes of ``values`` with floats to 10 significant digits: the last bits
    of numpy's vectorised exp/log and of BLAS differ between CPUs' SIMD kernels
    (AVX2 or AVX-512), a record's logic does not."""
    a = np.asarray(values)
    if a.dtype.kind == "f":
        a = np.array([float(f"{v:.10g}") for v in a.ravel().tolist()])
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize("name", list(BEFORE))
def test_default_options_keep_the_records_of_before(name):
    make, want = BEFORE[name]
    timings = (
        FixedTimes((1.0, 1.0, 2.0, 3.0)),
        random_times("exponential", [1.0, 1.0, 2.0, 3.0], None),
    )
    assert tuple(_digest(make(), t) for t in timings) == want
