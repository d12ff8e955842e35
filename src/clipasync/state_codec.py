"""The tagged-JSON codec of checkpointed state trees (:mod:`clipasync.checkpoint`).

:func:`encode_tree` turns a policy's state (numpy arrays, random generators,
frozen dataclasses and NamedTuples of the library, tuples, dicts, non-finite
floats) into JSON-able data, moving arrays aside; :func:`decode_tree` rebuilds
it. Decoding treats the data as untrusted: it can only build the state types
listed in :data:`STATE_TYPES` (a table from ``module:qualname`` to the class, plus
the old paths of :data:`LEGACY_CLASS_PATHS`), never imports a name read from a
file, checks every field against its class, and bounds the nesting, so a hand-edited
checkpoint is one :class:`~clipasync.errors.ConfigError`, never code that runs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.policies.async_sgd import AsyncState
from clipasync.policies.dc_asgd import DCState
from clipasync.policies.fedasync import FedAsyncState
from clipasync.policies.fedavg import FedAvgState
from clipasync.policies.fedbuff import FedBuffState
from clipasync.policies.malenia import MaleniaState
from clipasync.policies.msync import RoundState
from clipasync.policies.picky import PickyState
from clipasync.policies.rennala import BatchState
from clipasync.policies.ringleader import RingleaderState
from clipasync.policies.ringmaster import RingmasterState
from clipasync.transforms.adaptive import GeometricClipState, WindowClipState

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
Json = Any
#: Deepest nesting of a state tree.
MAX_DEPTH = 64

#: The only classes a checkpoint can build: the policy and transform states of the
#: library, by ``module:qualname``. A name outside this table is refused; nothing is
#: ever imported from a name in a file.
STATE_TYPES: dict[str, type] = {
    f"{cls.__module__}:{cls.__qualname__}": cls
    for cls in (
        AsyncState,
        BatchState,
        DCState,
        FedAsyncState,
        FedAvgState,
        FedBuffState,
        MaleniaState,
        PickyState,
        RingleaderState,
        RingmasterState,
        RoundState,
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
        raise ConfigError(f"malformed checkpoint entry: {shorten(data)}")
    if "__float__" in data:
        text = data["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise ConfigError(f"malformed checkpoint float: {shorten(text)}")
        return float(text)
    if "__array__" in data:
        key = data["__array__"]
        if not isinstance(key, str) or key not in arrays:
            raise ConfigError(f"checkpoint names a missing array: {shorten(key)}")
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
    raise ConfigError(f"malformed checkpoint entry: {shorten(sorted(data))}")


def shorten(value: Any) -> str:
    """``repr(value)``, cut to 80 characters (a message quotes data, not files)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"malformed checkpoint entry: {shorten(value)}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"malformed checkpoint entry: {shorten(value)}")
    return value


def _scalar(dtype: Any, value: Any) -> Any:
    try:
        dt = np.dtype(dtype) if isinstance(dtype, str) and len(dtype) <= 8 else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf" or isinstance(value, list | dict):
        raise ConfigError(f"malformed checkpoint scalar of type {shorten(dtype)}")
    try:
        return dt.type(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"malformed checkpoint scalar {shorten(value)}") from None


def _generator(state: Any) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ConfigError(f"unknown bit generator in checkpoint: {shorten(name)}")
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
        raise ConfigError(f"malformed checkpoint class name: {shorten(path)}")
    path = LEGACY_CLASS_PATHS.get(path, path)
    cls = STATE_TYPES.get(path)
    if cls is None:
        if not path.startswith("clipasync."):
            raise ConfigError(
                f"checkpoint names a class outside clipasync: {shorten(path)}"
            )
        raise ConfigError(f"checkpoint names an unknown class: {shorten(path)}")
    return cls
