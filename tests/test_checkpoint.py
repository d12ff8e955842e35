"""Checkpoints (clipasync.checkpoint): exact round trip of every policy state, no
pickle, old class paths, atomic writes, torch weights."""

from __future__ import annotations

import importlib
import json
import math
import os
import zipfile

import numpy as np
import pytest

from clipasync.checkpoint import (
    LEGACY_CLASS_PATHS,
    Checkpoint,
    decode_tree,
    encode_tree,
    load_checkpoint,
    save_checkpoint,
)
from clipasync.engine import StopRule, run
from clipasync.errors import ConfigError
from clipasync.policies import AsyncSGD, Rennala, Ringmaster, SyncMinibatch
from clipasync.policies.async_sgd import AsyncState
from clipasync.recorder import Recorder
from clipasync.runtime.driver import run_resumable
from clipasync.sim import SimulatedPool
from clipasync.timing import FixedTimes
from clipasync.transforms import chain, clip_by_norm, scale, scale_by_delay
from clipasync.transforms.adaptive import (
    GeometricClipState,
    WindowClipState,
    clip_by_geometric_quantile,
    clip_by_quantile,
)
from clipasync.types import Arrival, Reply
from tests.conftest import noisy_quadratic_grad

POLICIES = {
    "clipped": AsyncSGD(chain(clip_by_norm(1.0), scale(0.1)), assign="random"),
    "delay": AsyncSGD(scale_by_delay(0.1)),
    "ringmaster": Ringmaster(scale(0.1), max_delay=math.inf),
    "ringmaster_cancel": Ringmaster(scale(0.1), max_delay=3, cancel_stale=True),
    "rennala": Rennala(scale(0.1), batch_size=3, cancel_stale=True),
    "rennala_paper": Rennala(scale(0.1), batch_size=3),
    "minibatch": SyncMinibatch(scale(0.1)),
}


def _mid_run_state(policy, n_arrivals=7):
    pool = SimulatedPool(FixedTimes((1.0, 1.7, 2.9)), noisy_quadratic_grad, 3)
    captured = {}

    class Spy:
        def __getattr__(self, name):
            return getattr(policy, name)

        def on_arrival(self, state, arrival):
            captured["state"], reply = policy.on_arrival(state, arrival)
            return captured["state"], reply

    run(
        Spy(),
        pool,
        np.ones(4),
        stop=StopRule(max_arrivals=n_arrivals),
        rng=np.random.default_rng(5),
    )
    return captured["state"]


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state
        assert a.random() == b.random()
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _assert_same(u, v)
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            _assert_same(getattr(a, name), getattr(b, name))
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_state_round_trips_without_pickle(name, tmp_path):
    policy = POLICIES[name]
    state = _mid_run_state(policy)
    ck = Checkpoint(
        state=state,
        policy=policy.to_config(),
        version=policy.version(state),
        time=3.5,
        counts={"arrivals": 7},
        next_job=10,
        streams=[{"oracle": np.random.default_rng(1).bit_generator.state}],
        config={"lr": [0.1, math.inf]},
    )
    save_checkpoint(tmp_path, ck)
    back = load_checkpoint(tmp_path)
    _assert_same(state, back.state)
    assert back.policy == policy.to_config()
    assert back.config == {"lr": [0.1, math.inf]}
    # No pickle: the arrays load with allow_pickle=False, the rest is plain JSON.
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    with np.load(tmp_path / meta["arrays"], allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    with zipfile.ZipFile(tmp_path / meta["arrays"]) as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())


def test_optional_arrival_columns_survive_a_checkpoint(tmp_path):
    rec = Recorder()
    arrival = Arrival(0, 0, 0, None, 1.0, 1.0)
    rec.record_arrival(arrival, 0, Reply(applied=True))
    info = {"delta_norm": 2.0, "staleness_weight": 0.5}
    rec.record_arrival(arrival, 1, Reply(applied=False, info=info))
    ck = Checkpoint(
        state=None, policy={}, version=1, time=1.0, counts={}, next_job=2, records=rec
    )
    save_checkpoint(tmp_path, ck)
    back = load_checkpoint(tmp_path).records.arrival_arrays()
    cols = rec.arrival_arrays()
    assert list(back) == list(cols) and list(cols)[-2:] == list(info)
    for name, col in cols.items():
        assert back[name].dtype == col.dtype
        np.testing.assert_array_equal(back[name], col)
    np.testing.assert_array_equal(back["delta_norm"], [math.nan, 2.0])


def test_decoder_refuses_foreign_classes():
    with pytest.raises(ConfigError, match="outside clipasync"):
        decode_tree({"__dataclass__": "os:PathLike", "fields": {}}, {})
    # Only the listed legacy paths are rewritten; another old path is unknown.
    for path in ("clipasync.adaptive:Other", "clipasync.nowhere:WindowClipState"):
        with pytest.raises(ConfigError, match="unknown class"):
            decode_tree({"__namedtuple__": path, "fields": {}}, {})
    with pytest.raises(TypeError):
        encode_tree(lambda: 0, {})
    with pytest.raises(TypeError):
        encode_tree(np.array([object()]), {})


#: An AsyncSGD state with adaptive clipping as ``save_checkpoint`` wrote it before the
#: modules moved (commit of the old layout: clipasync.adaptive held the states).
OLD_LAYOUT_STATE = {
    "__dataclass__": "clipasync.policies.async_sgd:AsyncState",
    "fields": {
        "x": {"__array__": "a0"},
        "version": 4,
        "transform_state": {
            "__tuple__": [
                {
                    "__namedtuple__": "clipasync.adaptive:WindowClipState",
                    "fields": {
                        "max_norm": 1.5,
                        "norms": {"__array__": "a1"},
                        "num_seen": 2,
                    },
                },
                {
                    "__namedtuple__": "clipasync.adaptive:GeometricClipState",
                    "fields": {"max_norm": 2.0, "num_seen": 3},
                },
                None,
            ]
        },
        "num_workers": 2,
        "rng": {
            "__generator__": {
                "__dict__": {
                    "bit_generator": "PCG64",
                    "state": {
                        "__dict__": {
                            "state": 323726261719206589602543583274561722519,
                            "inc": 222003063171874261427395693950637096479,
                        }
                    },
                    "has_uint32": 0,
                    "uinteger": 0,
                }
            }
        },
    },
}


def test_a_state_written_with_old_class_paths_decodes_to_the_moved_classes():
    arrays = {"a0": np.array([0.5, -1.0]), "a1": np.array([1.0, 2.0, 0.0])}
    state = decode_tree(OLD_LAYOUT_STATE, arrays)
    assert type(state) is AsyncState
    window, geometric, scale_state = state.transform_state
    assert type(window) is WindowClipState and type(geometric) is GeometricClipState
    assert (window.max_norm, window.num_seen) == (1.5, 2)
    np.testing.assert_array_equal(window.norms, [1.0, 2.0, 0.0])
    assert geometric == GeometricClipState(2.0, 3) and scale_state is None
    assert state.rng.bit_generator.state == np.random.default_rng(3).bit_generator.state
    # Encoded again, the state names where the classes live now.
    again = json.dumps(encode_tree(state, {}))
    assert "clipasync.transforms.adaptive:WindowClipState" in again
    assert "clipasync.adaptive:" not in again


def _defined_at(path):
    """Where the class a path names is defined now (``None``: it names nothing)."""
    module, _, name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return f"{cls.__module__}:{cls.__qualname__}"


def test_every_legacy_path_names_the_moved_class_exactly():
    assert "clipasync.adaptive:WindowClipState" in LEGACY_CLASS_PATHS
    assert "clipasync.federated.staleness:HingeStaleness" in LEGACY_CLASS_PATHS
    for old, new in LEGACY_CLASS_PATHS.items():
        assert _defined_at(old) != old  # the class really left its old path
        assert _defined_at(new) == new
        assert old.rpartition(":")[2] == new.rpartition(":")[2]


def test_resume_from_a_checkpoint_with_old_class_paths(tmp_path):
    policy = AsyncSGD(
        chain(
            clip_by_quantile(0.5, window=4), clip_by_geometric_quantile(0.9), scale(0.1)
        )
    )
    timing = FixedTimes((1.0, 1.5, 2.5))

    def drive(directory, stop, resume=False):
        return run_resumable(
            policy,
            SimulatedPool(timing, noisy_quadratic_grad, 4),
            np.ones(4),
            stop=stop,
            rng=np.random.default_rng(0),
            checkpoint_dir=directory,
            checkpoint_every=5,
            resume=resume,
        )

    new_dir, old_dir = tmp_path / "new", tmp_path / "old"
    drive(new_dir, StopRule(max_updates=12))
    old_dir.mkdir()
    meta = (new_dir / "checkpoint.json").read_text()
    assert "clipasync.transforms.adaptive:WindowClipState" in meta
    # What the old layout wrote: the same checkpoint naming the old module.
    old_meta = meta.replace("clipasync.transforms.adaptive:", "clipasync.adaptive:")
    (old_dir / "checkpoint.json").write_text(old_meta)
    npz = json.loads(meta)["arrays"]
    (old_dir / npz).write_bytes((new_dir / npz).read_bytes())
    a = drive(new_dir, StopRule(max_updates=30), resume=True)
    b = drive(old_dir, StopRule(max_updates=30), resume=True)
    assert a.version == b.version == 30
    np.testing.assert_array_equal(a.params, b.params)
    for name, col in a.recorder.arrival_arrays().items():
        np.testing.assert_array_equal(col, b.recorder.arrival_arrays()[name])


def test_crash_between_write_and_rename_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    policy = POLICIES["clipped"]
    state = _mid_run_state(policy)
    first = Checkpoint(
        state=state, policy={}, version=1, time=1.0, counts={}, next_job=1
    )
    save_checkpoint(tmp_path, first)
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith("checkpoint.json"):
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    second = Checkpoint(
        state=state, policy={}, version=2, time=2.0, counts={}, next_job=2
    )
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(tmp_path, second)
    monkeypatch.setattr(os, "replace", real_replace)
    back = load_checkpoint(tmp_path)
    assert back.version == 1 and back.next_job == 1
    _assert_same(state, back.state)


def test_torch_state_dict_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    from clipasync.checkpoint import save_state_dict

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2)
    )
    n = sum(p.numel() for p in model.parameters())
    x = np.arange(n, dtype=np.float32)
    path = save_state_dict(model, x, tmp_path / "weights.pt")
    fresh = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2)
    )
    fresh.load_state_dict(torch.load(path, weights_only=True))
    flat = torch.cat([p.detach().reshape(-1) for p in fresh.parameters()]).numpy()
    np.testing.assert_array_equal(flat, x)


def test_a_checkpoint_naming_os_system_never_runs_it(tmp_path):
    marker = tmp_path / "pwned"
    entry = {
        "__namedtuple__": "clipasync.checkpoint:os.system",
        "fields": {"command": f"touch {marker}"},
    }
    with pytest.raises(ConfigError, match="unknown class"):
        decode_tree(entry, {})
    assert not marker.exists()


def test_tampered_checkpoints_are_one_clear_error(tmp_path):
    save_checkpoint(
        tmp_path,
        Checkpoint(state=None, policy={}, version=1, time=1.0, counts={}, next_job=2),
    )
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    for key, value, match in (
        ("arrays", "../../etc/passwd", "not a file name"),
        ("arrays", "nope.npz", "missing"),
        ("version", -3, "version: must be an integer >= 0"),
        ("version", True, "version"),
        ("keep_arrivals", "yes", "keep_arrivals"),
        ("time", {"__float__": "__import__('os')"}, "malformed checkpoint float"),
        ("format", 99, "format 99"),
    ):
        (tmp_path / "checkpoint.json").write_text(json.dumps({**meta, key: value}))
        with pytest.raises(ConfigError, match=match):
            load_checkpoint(tmp_path)
