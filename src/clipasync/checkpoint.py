"""Atomic checkpoints of a run's driver, loaded without pickle.

A checkpoint directory holds two files:

* ``arrays-NNNNNN.npz``: every numpy array (iterate, transform-state arrays, the
  arrival records' columns), read back with ``np.load(..., allow_pickle=False)``;
* ``checkpoint.json``: everything else (policy state tree, random-stream states,
  counters, evaluation rows, run config) and the name of its ``.npz``.

Writes are atomic: the new ``.npz`` is written under a fresh name (temp file, fsync,
``os.replace``), then ``checkpoint.json`` is replaced the same way, and only then is
the previous ``.npz`` removed. A crash at any point leaves the previous checkpoint
whole. Nothing is ever unpickled: frozen-dataclass states are encoded as tagged JSON
(:func:`encode_tree`) and rebuilt only for classes defined inside ``clipasync``.
A class is named by its ``module:qualname`` path; a checkpoint written before a class
moved names its old path, which :data:`LEGACY_CLASS_PATHS` maps to the new one.

PyTorch weights are saved separately as a ``state_dict`` of tensors
(:func:`save_state_dict`), which ``torch.load(path, weights_only=True)`` reloads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.recorder import Recorder
from clipasync.types import Vector

#: Version of the on-disk layout.
FORMAT = 1
META = "checkpoint.json"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
_SAFE_PACKAGE = "clipasync."
Json = Any

#: Class paths of checkpoints written by earlier layouts of the package (before the
#: modules moved into floors) -> the path of the same class now. The decoder reads
#: an old path through this table, and nowhere else is a path rewritten. Every
#: public dataclass or NamedTuple of a moved module on the algorithm and execution
#: floors is listed (the states a checkpoint can hold among them).
LEGACY_CLASS_PATHS: dict[str, str] = {
    "clipasync.adaptive:GeometricClipState": (
        "clipasync.transforms.adaptive:GeometricClipState"
    ),
    "clipasync.adaptive:WindowClipState": (
        "clipasync.transforms.adaptive:WindowClipState"
    ),
    "clipasync.datasets.fashion_mnist:FashionMNIST": (
        "clipasync.problems.datasets.fashion_mnist:FashionMNIST"
    ),
    "clipasync.datasets.text:CharData": "clipasync.problems.datasets.text:CharData",
    "clipasync.datasets.text:CharVocab": "clipasync.problems.datasets.text:CharVocab",
    "clipasync.federated.availability:BernoulliDropout": (
        "clipasync.sim.dropout:BernoulliDropout"
    ),
    "clipasync.federated.availability:PeriodicOffline": (
        "clipasync.sim.dropout:PeriodicOffline"
    ),
    "clipasync.federated.availability:ScriptedDropout": (
        "clipasync.sim.dropout:ScriptedDropout"
    ),
    "clipasync.federated.staleness:ConstantStaleness": (
        "clipasync.policies.staleness:ConstantStaleness"
    ),
    "clipasync.federated.staleness:HingeStaleness": (
        "clipasync.policies.staleness:HingeStaleness"
    ),
    "clipasync.federated.staleness:PolynomialStaleness": (
        "clipasync.policies.staleness:PolynomialStaleness"
    ),
    "clipasync.sim:TimingSummary": "clipasync.sim.timing_only:TimingSummary",
    "clipasync.theory:ClippedAsgdAdvice": "clipasync.theory.advice:ClippedAsgdAdvice",
    "clipasync.theory:LowerBound": "clipasync.theory.bounds:LowerBound",
    "clipasync.theory:NoiseEstimate": "clipasync.theory.estimators:NoiseEstimate",
    "clipasync.theory:TheoryReport": "clipasync.theory.summary:TheoryReport",
    "clipasync.theory:TwoSpeedDelays": "clipasync.theory.bounds:TwoSpeedDelays",
    "clipasync.transforms:GradientTransform": (
        "clipasync.transforms.base:GradientTransform"
    ),
}


# --------------------------------------------------------------------- tree codec


def encode_tree(obj: Any, arrays: dict[str, npt.NDArray[Any]]) -> Json:
    """Encode a state tree as JSON-able data, moving arrays into ``arrays``.

    Handles ``None``, bools, ints, floats (incl. NaN/±inf), strings, numpy scalars
    and arrays, tuples, lists, string-keyed dicts, ``numpy.random.Generator`` (its
    ``bit_generator.state``), and dataclasses/NamedTuples defined in ``clipasync``.

    Raises:
        TypeError: For anything else (an object array, a lambda, ...).
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("object arrays cannot be checkpointed without pickle")
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return {"__scalar__": obj.dtype.str, "value": encode_tree(obj.item(), arrays)}
    if isinstance(obj, np.random.Generator):
        return {"__generator__": encode_tree(obj.bit_generator.state, arrays)}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        fields = {f: encode_tree(getattr(obj, f), arrays) for f in obj._fields}
        return {"__namedtuple__": _class_path(type(obj)), "fields": fields}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_tree(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [encode_tree(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("only dicts with string keys can be checkpointed")
        return {"__dict__": {k: encode_tree(v, arrays) for k, v in obj.items()}}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {
            f.name: encode_tree(getattr(obj, f.name), arrays)
            for f in dataclasses.fields(obj)
        }
        return {"__dataclass__": _class_path(type(obj)), "fields": fields}
    raise TypeError(f"cannot checkpoint a {type(obj).__qualname__}")


def decode_tree(data: Json, arrays: dict[str, npt.NDArray[Any]]) -> Any:
    """Inverse of :func:`encode_tree`.

    Raises:
        ConfigError: On an unknown tag, a class outside ``clipasync`` or an unknown
            bit generator (a checkpoint can never make this import arbitrary code).
    """
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode_tree(v, arrays) for v in data]
    if not isinstance(data, dict) or len(data) == 0:
        raise ConfigError(f"malformed checkpoint entry: {data!r}")
    if "__float__" in data:
        return float(data["__float__"])
    if "__array__" in data:
        return arrays[data["__array__"]]
    if "__scalar__" in data:
        return np.dtype(data["__scalar__"]).type(decode_tree(data["value"], arrays))
    if "__generator__" in data:
        state = decode_tree(data["__generator__"], arrays)
        name = state.get("bit_generator")
        if name not in _BIT_GENERATORS:
            raise ConfigError(f"unknown bit generator in checkpoint: {name!r}")
        bit_generator = getattr(np.random, name)()
        bit_generator.state = state
        return np.random.Generator(bit_generator)
    if "__tuple__" in data:
        return tuple(decode_tree(v, arrays) for v in data["__tuple__"])
    if "__dict__" in data:
        return {k: decode_tree(v, arrays) for k, v in data["__dict__"].items()}
    if "__namedtuple__" in data or "__dataclass__" in data:
        tag = "__namedtuple__" if "__namedtuple__" in data else "__dataclass__"
        cls = _import_class(data[tag])
        fields = {k: decode_tree(v, arrays) for k, v in data["fields"].items()}
        if tag == "__namedtuple__":
            return cls(**fields)
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"{data[tag]} is not a dataclass")
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        obj = cls(**{k: v for k, v in fields.items() if k in init})  # type: ignore[operator]
        for k, v in fields.items():
            if k not in init:
                object.__setattr__(obj, k, v)
        return obj
    raise ConfigError(f"malformed checkpoint entry: {sorted(data)}")


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str) -> Any:
    path = LEGACY_CLASS_PATHS.get(path, path)
    module, _, qualname = path.partition(":")
    if not (module + ".").startswith(_SAFE_PACKAGE) or "<" in qualname:
        raise ConfigError(f"checkpoint names a class outside clipasync: {path!r}")
    unknown = ConfigError(f"checkpoint names an unknown class: {path!r}")
    try:
        obj: Any = importlib.import_module(module)
    except ModuleNotFoundError as exc:  # a missing extra (torch, ...) is re-raised
        if exc.name is None or not f"{module}.".startswith(f"{exc.name}."):
            raise
        raise unknown from None
    for part in qualname.split("."):
        obj = getattr(obj, part, unknown)
        if obj is unknown:
            raise unknown
    return obj


# --------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    """What a driver needs to continue a run.

    Attributes:
        state: The policy state (iterate, transform state, random streams, ...).
        policy: ``policy.to_config()`` of the run (checked on resume).
        version: Server version at the checkpoint.
        time: Run time of the last processed arrival (seconds on a real pool).
        counts: ``arrivals``, ``applied``, ``discarded``, ``skipped``, ``cancelled``.
        next_job: First job id not yet used.
        streams: Per-worker stream states of the pool (``None`` if it has none).
        records: Arrival and evaluation rows so far.
        config: The run's config as plain data (for ``clipasync resume``).
        sequence: Number of checkpoints written before this one, plus one.
    """

    state: Any
    policy: dict[str, Any]
    version: int
    time: float
    counts: dict[str, int]
    next_job: int
    streams: list[Any] | None = None
    records: Recorder = field(default_factory=Recorder)
    config: dict[str, Any] | None = None
    sequence: int = 0


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_checkpoint(directory: str | os.PathLike[str], ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` into ``directory`` atomically (see module docstring).

    Returns:
        The path of ``checkpoint.json``.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    previous = _current_arrays(d)
    seq = ckpt.sequence if ckpt.sequence > 0 else _next_sequence(d)
    arrays: dict[str, npt.NDArray[Any]] = {}
    meta = {
        "format": FORMAT,
        "sequence": seq,
        "state": encode_tree(ckpt.state, arrays),
        "policy": encode_tree(ckpt.policy, arrays),
        "version": int(ckpt.version),
        "time": encode_tree(float(ckpt.time), arrays),
        "counts": {k: int(v) for k, v in ckpt.counts.items()},
        "next_job": int(ckpt.next_job),
        "streams": encode_tree(ckpt.streams, arrays),
        "evals": encode_tree(ckpt.records.evals, arrays),
        "keep_arrivals": ckpt.records.keep_arrivals,
        "config": encode_tree(ckpt.config, arrays),
    }
    for name, col in ckpt.records.arrival_arrays().items():
        arrays[f"rec/{name}"] = col
    for name, col in ckpt.records.cancellation_arrays().items():
        arrays[f"cancel/{name}"] = col
    npz = f"arrays-{seq:06d}.npz"
    meta["arrays"] = npz
    _write_atomic(d / npz, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]
    text = json.dumps(meta, allow_nan=False).encode()
    _write_atomic(d / META, lambda fh: fh.write(text))
    if previous is not None and previous != npz:
        with contextlib.suppress(FileNotFoundError):
            (d / previous).unlink()
    return d / META


def load_checkpoint(directory: str | os.PathLike[str]) -> Checkpoint:
    """Load the checkpoint in ``directory`` (no pickle anywhere).

    Raises:
        ConfigError: If there is no checkpoint or it is malformed.
    """
    d = Path(directory)
    try:
        meta = json.loads((d / META).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no checkpoint in {d}") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"checkpoint format {meta.get('format')} is not {FORMAT}")
    with np.load(d / meta["arrays"], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    rec = Recorder(keep_arrivals=bool(meta["keep_arrivals"]))
    cols = rec.arrivals
    for key, values in arrays.items():  # every saved column, optional ones included
        if key.startswith("rec/"):
            cols.setdefault(key[len("rec/") :], []).extend(values.tolist())
        elif key.startswith("cancel/"):  # absent in checkpoints of older versions
            rec.cancellations[key[len("cancel/") :]] = values.tolist()
    rec.evals = decode_tree(meta["evals"], arrays)
    return Checkpoint(
        state=decode_tree(meta["state"], arrays),
        policy=decode_tree(meta["policy"], arrays),
        version=int(meta["version"]),
        time=float(decode_tree(meta["time"], arrays)),
        counts={k: int(v) for k, v in meta["counts"].items()},
        next_job=int(meta["next_job"]),
        streams=decode_tree(meta["streams"], arrays),
        records=rec,
        config=decode_tree(meta["config"], arrays),
        sequence=int(meta["sequence"]),
    )


def has_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """Return whether ``directory`` holds a checkpoint."""
    return (Path(directory) / META).is_file()


def _current_arrays(d: Path) -> str | None:
    try:
        return str(json.loads((d / META).read_text())["arrays"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def _next_sequence(d: Path) -> int:
    try:
        return int(json.loads((d / META).read_text())["sequence"]) + 1
    except (FileNotFoundError, KeyError, ValueError):
        return 1


# --------------------------------------------------------------------- torch weights


def state_dict_from_vector(model: Any, x: Vector) -> dict[str, Any]:
    """Return ``model``'s ``state_dict`` with its trainable parameters taken from the
    flat vector ``x`` (the :class:`~clipasync.problems.TorchProblem` layout:
    parameters with ``requires_grad`` in ``parameters()`` order); buffers are kept.

    Raises:
        ConfigError: If ``x`` does not have one entry per trainable parameter.
    """
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    flat = np.asarray(x).reshape(-1)
    if flat.shape[0] != total:
        raise ConfigError(f"x has {flat.shape[0]} entries, the model {total}")
    by_id: dict[int, Any] = {}
    offset = 0
    for p in params:
        chunk = flat[offset : offset + p.numel()].reshape(tuple(p.shape))
        by_id[id(p)] = torch.tensor(chunk, dtype=p.dtype)
        offset += p.numel()
    names = {id(p): n for n, p in model.named_parameters()}
    out = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for pid, tensor in by_id.items():
        out[names[pid]] = tensor
    return out


def save_state_dict(model: Any, x: Vector, path: str | os.PathLike[str]) -> Path:
    """Save the weights ``x`` of ``model`` as a ``state_dict`` (atomic write).

    Reload with ``model.load_state_dict(torch.load(path, weights_only=True))``.
    """
    import torch

    sd = state_dict_from_vector(model, x)
    p = Path(path)
    _write_atomic(p, lambda fh: torch.save(sd, fh))
    return p
