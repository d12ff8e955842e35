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
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.recorder import Recorder
from clipasync.state_codec import (
    LEGACY_CLASS_PATHS,
    STATE_TYPES,
    decode_tree,
    encode_tree,
    shorten,
)
from clipasync.types import Vector

#: Version of the on-disk layout.
FORMAT = 1
META = "checkpoint.json"
#: Cap on the inflated size of a checkpoint's arrays (a zip bomb is refused).
MAX_ARRAY_BYTES = 1 << 30
#: Cap on the size of ``checkpoint.json``.
MAX_META_BYTES = 256 << 20

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
            f"checkpoint format {shorten(meta.get('format'))} is not {FORMAT}"
        )
    return meta


def _count(meta: dict[str, Any], key: str, value: Any = None) -> int:
    v = meta.get(key) if value is None else value
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 62:
        raise ConfigError(f"{key}: must be an integer >= 0 (got {shorten(v)})")
    return v


def _from_meta(d: Path, meta: dict[str, Any]) -> Checkpoint:
    arrays = _read_arrays(d, meta.get("arrays"))
    keep = meta.get("keep_arrivals")
    if not isinstance(keep, bool):
        raise ConfigError(f"keep_arrivals: must be true or false (got {shorten(keep)})")
    rec = Recorder(keep_arrivals=keep)
    cols = rec.arrivals
    for key, values in arrays.items():  # every saved column, optional ones included
        if key.startswith("rec/"):
            if values.ndim != 1:
                raise ConfigError(f"arrival column {key[4:]!r} is not 1-D")
            cols.setdefault(key[len("rec/") :], []).extend(values.tolist())
        elif key.startswith("cancel/"):  # absent in checkpoints of older versions
            name = key[len("cancel/") :]
            if name not in rec.cancellations or values.ndim != 1:
                raise ConfigError(f"cancellation column {name!r} is unknown or not 1-D")
            rec.cancellations[name] = values.tolist()
    evals = decode_tree(meta.get("evals"), arrays)
    if not isinstance(evals, list) or not all(isinstance(e, dict) for e in evals):
        raise ConfigError("evals: must be a list of rows")
    rec.evals = evals
    t = decode_tree(meta.get("time"), arrays)
    if isinstance(t, bool) or not isinstance(t, int | float) or not t >= 0:
        raise ConfigError(f"time: must be a number >= 0 (got {shorten(t)})")
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
            f"arrays: not a file name in the checkpoint directory: {shorten(name)}"
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


__all__ = [
    "FORMAT",
    "LEGACY_CLASS_PATHS",
    "META",
    "STATE_TYPES",
    "Checkpoint",
    "decode_tree",
    "encode_tree",
    "has_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "save_state_dict",
    "state_dict_from_vector",
]
