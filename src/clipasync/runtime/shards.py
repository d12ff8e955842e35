"""A sharded server: the policy decides in the driver, K shard actors hold the model.

When one driver process is the bottleneck (its memory bandwidth: each update reads
the gradient and reads and writes the model), the update's vector work moves to K
shard actors, each holding a contiguous slice of the float32 model (a *data plane*),
while the policy of Erickson & Johansson (2026), arXiv 2606.13287 — apply or
discard, dispatch, cancel — stays in the driver (a *control plane* of job ids,
versions and norms). The same pure policy code runs, on two duck arrays like those
of :mod:`clipasync.runtime.inplace`:

* :class:`ShardedModel` — the model as the driver sees it: the shard actors and the
  object refs of their current slices (version by version);
* :class:`ShardedGradient` — a worker's result as K slice refs (the worker splits
  its gradient and returns each slice as its own object, so a shard reads only its
  slice) and the *global* ‖g‖², so clipping uses the full gradient's norm.

``x − u`` with ``u`` a ``ShardedGradient`` times recorded scalars sends each shard
its slice ref and the scalars; a shard applies
:func:`~clipasync.runtime.inplace.apply_in_place` to its slice and returns the new
slice, whose ref is the next model's. Every shard receives the same updates in the
same order (one caller's calls to an actor run in order), so the concatenated
slices are bit-identical to the single-driver iterates. Any other operation
gathers the slices (``np.asarray``) and takes numpy's plain path — the policies
that average gradients (Rennala, minibatch) run correctly but unsharded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from clipasync.runtime.inplace import ScaledPayload, apply_in_place
from clipasync.types import Vector

_SCALAR = (int, float, np.floating, np.integer)


def bounds(dim: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[lo, hi)`` slices of ``dim`` entries over ``shards`` shards
    (sizes differ by at most one)."""
    edges = np.linspace(0, dim, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def split(g: Vector, shards: int) -> list[Vector]:
    """The slices of ``g`` (views), one per shard."""
    return [g[a:b] for a, b in bounds(g.shape[0], shards)]


class _Shard:
    """A shard actor's state: one slice of the model (wrapped with ``ray.remote``)."""

    def __init__(self, x: Vector) -> None:
        self.x = np.array(x, dtype=np.float32, copy=True)

    def value(self) -> Vector:
        return self.x

    def apply(self, g: Vector, scalars: tuple[Any, ...]) -> Vector:
        apply_in_place(self.x, g, scalars)
        return self.x  # stored as the next version's slice (a copy, by Ray)


class ShardedModel(NDArrayOperatorsMixin):
    """The model held by shard actors (see module docstring)."""

    def __init__(self, ray: Any, x0: Vector, shards: int, options: dict[str, Any]):
        cls = ray.remote(_Shard).options(**options)
        self._ray = ray
        self.dim = int(x0.shape[0])
        self.dtype = np.dtype(np.float32)
        self.actors = [cls.remote(part) for part in split(np.asarray(x0), shards)]
        self.refs: list[Any] = [a.value.remote() for a in self.actors]
        self._final: Vector | None = None  # the gathered model once closed

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def __len__(self) -> int:
        return self.dim

    def __array__(self, dtype: Any = None, copy: Any = None) -> Vector:
        out = self._final
        if out is None:
            out = np.concatenate(self._ray.get(self.refs))
        return out if dtype is None else out.astype(dtype)

    def apply(self, g: ShardedGradient) -> None:
        if self._final is not None:
            raise RuntimeError("the shards of this model were closed")
        self.refs = [
            a.apply.remote(part, g.scalars)
            for a, part in zip(self.actors, g.refs, strict=True)
        ]

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kw: Any) -> Any:
        if any(isinstance(x, ShardedGradient) for x in inputs):
            return NotImplemented  # the gradient's override decides (x − u)
        args = [np.asarray(x) if isinstance(x, ShardedModel) else x for x in inputs]
        return getattr(ufunc, method)(*args, **kw)

    def __array_function__(
        self, func: Callable[..., Any], types: Any, args: Any, kwargs: Any
    ) -> Any:
        if any(isinstance(a, ShardedGradient) for a in args):
            return NotImplemented
        plain = [np.asarray(a) if isinstance(a, ShardedModel) else a for a in args]
        return func(*plain, **kwargs)

    def close(self) -> None:
        """Gather the model (kept: the run's result stays readable), end the shards."""
        if self._final is None:
            self._final = np.concatenate(self._ray.get(self.refs))
        for a in self.actors:
            self._ray.kill(a)


class ShardedGradient(ScaledPayload):
    """A worker's gradient as one object ref per shard, with its global ‖g‖²."""

    __slots__ = ("_ray", "dim", "refs", "scalars", "squared_norm")

    def __init__(
        self,
        ray: Any,
        refs: Sequence[Any],
        squared_norm: Any,
        dim: int,
        scalars: tuple[Any, ...] = (),
    ) -> None:
        self._ray = ray
        self.refs = list(refs)
        self.squared_norm = squared_norm
        self.dim = dim
        self.scalars = scalars

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def __len__(self) -> int:
        return self.dim

    def materialise(self) -> Vector:
        out: Vector = np.concatenate(self._ray.get(self.refs))
        for s in self.scalars:
            out = out * s
        return out

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kw: Any) -> Any:
        if method == "__call__" and not kw and len(inputs) == 2:
            a, b = inputs
            if ufunc is np.multiply:
                g, s = (a, b) if a is self else (b, a)
                if (
                    g is self
                    and isinstance(s, _SCALAR)
                    and np.result_type(np.float32, s) == np.float32
                ):
                    return ShardedGradient(
                        self._ray, self.refs, None, self.dim, (*self.scalars, s)
                    )
            if ufunc is np.subtract and b is self and isinstance(a, ShardedModel):
                a.apply(self)
                return a
        args = [
            x.materialise()
            if isinstance(x, ShardedGradient)
            else np.asarray(x)
            if isinstance(x, ShardedModel)
            else x
            for x in inputs
        ]
        return getattr(ufunc, method)(*args, **kw)
