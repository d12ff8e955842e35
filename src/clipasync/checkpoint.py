"""Atomic checkpoints of a run's driver, loaded without pickle.

A checkpoint directory holds two files:

* ``arrays-NNNNNN.npz``: every numpy array (iterate, transform-state arrays, the
  arrival records' columns), read back with ``np.load(..., allow_pickle=False)``;
* ``checkpoint.json``: everything else (policy state tree, random-stream states,
  counters, evaluation rows, run config) and the name of its ``.npz``.

Writes are atomic: the new ``.npz`` is written under a fresh name (temp file, fsync,
``os.replace``), then ``checkpoint.json`` is replaced the same way, and only then is
the previous ``.npz`` removed. A crash at any point leaves the previous checkpoint
whole. Nothing is ever unpickled and nothing is imported by a name read from a file:
frozen-dataclass states are encoded as tagged JSON (:func:`encode_tree`) and rebuilt
only for the library's own state types listed in :data:`STATE_TYPES` (a table from
``module:qualname`` to the class); a checkpoint written before a class moved names
its old path, which :data:`LEGACY_CLASS_PATHS` maps to the new one. A checkpoint is
data a colleague may have sent: every field is checked for type and range, the
arrays file must lie inside the checkpoint directory, and the inflated size of the
arrays is capped, so a tampered checkpoint is one clear :class:`ConfigError`.

PyTorch weights are saved separately as a ``state_dict`` of tensors
(:func:`save_state_dict`), which ``torch.load(path, weights_only=True)`` reloads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.policies.async_sgd import AsyncState
from clipasync.policies.fedasync import FedAsyncState
from clipasync.policies.fedbuff import FedBuffState
from clipasync.policies.rennala import BatchState
from clipasync.policies.ringmaster import RingmasterState
from clipasync.recorder import Recorder
from clipasync.transforms.adaptive import GeometricClipState, WindowClipState
from clipasync.types import Vector

#: Version of the on-disk layout.
FORMAT = 1
META = "checkpoint.json"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
Json = Any
#: Cap on the inflated size of a checkpoint's arrays (a zip bomb is refused).
MAX_ARRAY_BYTES = 1 << 30
#: Cap on the size of ``checkpoint.json`` and on the nesting of its state tree.
MAX_META_BYTES = 256 << 20
MAX_DEPTH = 64

#: The only classes a checkpoint can build: the policy and transform states of the
#: library, by ``module:qualname``. A name outside this table is refused; nothing is
#: ever imported from a name in a file.
STATE_TYPES: dict[str, type] = {
    f"{cls.__module__}:{cls.__qualname__}": cls
    for cls in (
        AsyncState,
        BatchState,
        FedAsyncState,
        FedBuffState,
        RingmasterState,
        GeometricClipState,
        WindowClipState,
    )
}

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


def decode_tree(data: Json, arrays: dict[str, npt.NDArray[Any]], depth: int = 0) -> Any:
    """Inverse of :func:`encode_tree`.

    Raises:
        ConfigError: On an unknown tag, a class outside :data:`STATE_TYPES`, fields
            that are not the class's, an unknown bit generator or array, or a tree
            nested deeper than :data:`MAX_DEPTH` (a checkpoint can never make this
            import or call arbitrary code).
    """
    if depth > MAX_DEPTH:
        raise ConfigError(f"checkpoint state nested deeper than {MAX_DEPTH} levels")
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode_tree(v, arrays, depth + 1) for v in data]
    if not isinstance(data, dict) or len(data) == 0:
        raise ConfigError(f"malformed checkpoint entry: {_short(data)}")
    if "__float__" in data:
        text = data["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise ConfigError(f"malformed checkpoint float: {_short(text)}")
        return float(text)
    if "__array__" in data:
        key = data["__array__"]
        if not isinstance(key, str) or key not in arrays:
            raise ConfigError(f"checkpoint names a missing array: {_short(key)}")
        return arrays[key]
    if "__scalar__" in data:
        return _scalar(data["__scalar__"], decode_tree(data.get("value"), arrays))
    if "__generator__" in data:
        return _generator(decode_tree(data["__generator__"], arrays, depth + 1))
    if "__tuple__" in data:
        return tuple(
            decode_tree(v, arrays, depth + 1) for v in _list(data["__tuple__"])
        )
    if "__dict__" in data:
        return {
            str(k): decode_tree(v, arrays, depth + 1)
            for k, v in _dict(data["__dict__"]).items()
        }
    if "__namedtuple__" in data or "__dataclass__" in data:
        tag = "__namedtuple__" if "__namedtuple__" in data else "__dataclass__"
        cls = _state_class(data[tag])
        fields = {
            k: decode_tree(v, arrays, depth + 1)
            for k, v in _dict(data.get("fields")).items()
        }
        return _build(cls, tag, fields)
    raise ConfigError(f"malformed checkpoint entry: {_short(sorted(data))}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"malformed checkpoint entry: {_short(value)}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"malformed checkpoint entry: {_short(value)}")
    return value


def _scalar(dtype: Any, value: Any) -> Any:
    try:
        dt = np.dtype(dtype) if isinstance(dtype, str) and len(dtype) <= 8 else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf" or isinstance(value, list | dict):
        raise ConfigError(f"malformed checkpoint scalar of type {_short(dtype)}")
    try:
        return dt.type(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"malformed checkpoint scalar {_short(value)}") from None


def _generator(state: Any) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ConfigError(f"unknown bit generator in checkpoint: {_short(name)}")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ConfigError(f"malformed {name} state in checkpoint") from None
    return np.random.Generator(bit_generator)


def _build(cls: type, tag: str, fields: dict[str, Any]) -> Any:
    """An instance of an allow-listed state class from exactly its fields."""
    is_tuple = hasattr(cls, "_fields")
    if is_tuple != (tag == "__namedtuple__"):
        raise ConfigError(f"{_class_path(cls)} is not a {tag.strip('_')}")
    if is_tuple:
        names = set(cls._fields)  # type: ignore[attr-defined]
        init = names
    else:
        names = {f.name for f in dataclasses.fields(cls)}
        init = {f.name for f in dataclasses.fields(cls) if f.init}
    if set(fields) - names or init - set(fields):
        raise ConfigError(
            f"checkpoint fields of {_class_path(cls)} are not its fields "
            f"({', '.join(sorted(names))})"
        )
    try:
        obj = cls(**{k: v for k, v in fields.items() if k in init})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad checkpoint {_class_path(cls)}: {exc}") from None
    for k, v in fields.items():
        if k not in init:
            object.__setattr__(obj, k, v)
    return obj


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _state_class(path: Any) -> type:
    """The state class a checkpoint names: a table look-up, never an import."""
    if not isinstance(path, str):
        raise ConfigError(f"malformed checkpoint class name: {_short(path)}")
    path = LEGACY_CLASS_PATHS.get(path, path)
    cls = STATE_TYPES.get(path)
    if cls is None:
        if not path.startswith("clipasync."):
            raise ConfigError(
                f"checkpoint names a class outside clipasync: {_short(path)}"
            )
        raise ConfigError(f"checkpoint names an unknown class: {_short(path)}")
    return cls


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
        ConfigError: If there is no checkpoint or it is malformed (one line naming
            the file and the bad field).
    """
    d = Path(directory)
    meta = _read_meta(d)
    try:
        return _from_meta(d, meta)
    except ConfigError as exc:
        raise ConfigError(f"{d / META}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        raise ConfigError(f"{d / META}: malformed checkpoint ({exc!r:.80})") from None


def _read_meta(d: Path) -> dict[str, Any]:
    path = d / META
    try:
        if path.stat().st_size > MAX_META_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_META_BYTES >> 20} MiB")
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no checkpoint in {d}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: not a checkpoint (a JSON object is expected)")
    if meta.get("format") != FORMAT:
        raise ConfigError(
            f"checkpoint format {_short(meta.get('format'))} is not {FORMAT}"
        )
    return meta


def _count(meta: dict[str, Any], key: str, value: Any = None) -> int:
    v = meta.get(key) if value is None else value
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 62:
        raise ConfigError(f"{key}: must be an integer >= 0 (got {_short(v)})")
    return v


def _from_meta(d: Path, meta: dict[str, Any]) -> Checkpoint:
    arrays = _read_arrays(d, meta.get("arrays"))
    keep = meta.get("keep_arrivals")
    if not isinstance(keep, bool):
        raise ConfigError(f"keep_arrivals: must be true or false (got {_short(keep)})")
    rec = Recorder(keep_arrivals=keep)
    cols = rec.arrivals
    for key, values in arrays.items():  # every saved column, optional ones included
        if key.startswith("rec/"):
            if values.ndim != 1:
                raise ConfigError(f"arrival column {key[4:]!r} is not 1-D")
            cols.setdefault(key[len("rec/") :], []).extend(values.tolist())
    evals = decode_tree(meta.get("evals"), arrays)
    if not isinstance(evals, list) or not all(isinstance(e, dict) for e in evals):
        raise ConfigError("evals: must be a list of rows")
    rec.evals = evals
    t = decode_tree(meta.get("time"), arrays)
    if isinstance(t, bool) or not isinstance(t, int | float) or not t >= 0:
        raise ConfigError(f"time: must be a number >= 0 (got {_short(t)})")
    counts = meta.get("counts")
    if not isinstance(counts, dict):
        raise ConfigError("counts: must be a mapping")
    policy = decode_tree(meta.get("policy"), arrays)
    config = decode_tree(meta.get("config"), arrays)
    if not isinstance(policy, dict) or not isinstance(config, dict | None):
        raise ConfigError("policy and config: must be mappings")
    streams = decode_tree(meta.get("streams"), arrays)
    if not isinstance(streams, list | None):
        raise ConfigError("streams: must be a list")
    return Checkpoint(
        state=decode_tree(meta.get("state"), arrays),
        policy=policy,
        version=_count(meta, "version"),
        time=float(t),
        counts={str(k): _count(meta, f"counts.{k}", v) for k, v in counts.items()},
        next_job=_count(meta, "next_job"),
        streams=streams,
        records=rec,
        config=config,
        sequence=_count(meta, "sequence"),
    )


def _read_arrays(d: Path, name: Any) -> dict[str, npt.NDArray[Any]]:
    """The arrays file a checkpoint names: inside ``d``, capped when inflated."""
    if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
        raise ConfigError(
            f"arrays: not a file name in the checkpoint directory: {_short(name)}"
        )
    path = d / name
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ConfigError(f"arrays: {name} is not an .npz archive")
            members = npz.zip.infolist() if npz.zip is not None else []
            inflated = sum(int(info.file_size) for info in members)
            if inflated > MAX_ARRAY_BYTES:
                raise ConfigError(
                    f"arrays: {name} inflates to {inflated >> 20} MiB, over the "
                    f"{MAX_ARRAY_BYTES >> 20} MiB limit"
                )
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ConfigError(f"arrays: {name} is missing") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"arrays: {name} is unreadable ({exc!s:.80})") from None
    for key, a in arrays.items():
        if a.dtype.hasobject or a.dtype.kind not in "biuf":
            raise ConfigError(f"arrays: {name}: array {key!r} is not numeric")
    return arrays


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
