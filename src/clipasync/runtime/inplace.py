"""The server's update at model scale: in place, one pass, the pure layer's rules.

The policies and transforms of the pure layer (Erickson & Johansson 2026, arXiv
2606.13287, Algorithm 1: ``x ← x − γ·clip_c(g)``) are numpy vector functions: each
update makes fresh model-sized arrays (``g·(c/‖g‖)``, then ``·γ``, then ``x − u``)
and a norm pass. At 10^7 parameters that is five passes over 40 MB per update. Here
the *same* policy code runs unchanged on two duck arrays (numpy's
``__array_ufunc__`` / ``__array_function__`` protocols):

* :class:`Gradient` — a worker's result with the squared norm the worker computed
  (``np.dot(g, g)``, the very expression of
  :func:`~clipasync.transforms.clipping.grad_norm`), so the policy's norm costs no
  pass; multiplying it by a scalar only records the scalar (``clip``, ``scale``,
  ``scale_by_delay`` are such multiplications).
* :class:`ServerBuffer` — the driver-owned model (float32 at model scale).
  ``x − u`` with ``u`` a (scaled) :class:`Gradient` is applied *in place*, chunk by
  chunk: per chunk of
  ``CHUNK`` entries the recorded multiplications are replayed into a cache-resident
  scratch array with the same ufuncs, operand types and order as the pure path,
  then subtracted from the model's chunk. Elementwise IEEE operations give the same
  result whatever the chunking, so the iterates are **bit-identical** to the pure
  path's; no model-sized temporary is made, and the model is read and written once.

Every other operation (a mean of buffered gradients, FedAsync's mixing, a
``np.isfinite``) materialises the arrays and runs numpy's own function: the same
numbers, without the savings. The buffer is overwritten by ``x_{k+1}``: valid
because the engine only ever uses a policy's newest state (a policy that kept an
older ``x`` and read it later would see the new values; none here does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from clipasync.types import Vector

#: Entries per chunk of the in-place update (256 KiB of float32: stays in cache).
CHUNK = 1 << 16

_SCALAR = (int, float, np.floating, np.integer)


class ServerBuffer(np.ndarray):
    """The driver-owned model vector; ``x − Gradient`` updates it in place.

    Its dtype is ``x0``'s when floating (float32 for a model, float64 stays float64,
    so the iterates are those of the pure path), else float32. Only the buffer made
    here is updated in place (``owned``); arrays derived from it
    (``np.zeros_like``, views, copies) are ordinary.
    """

    owned: bool

    def __new__(cls, x0: Vector) -> ServerBuffer:
        x = np.asarray(x0)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        obj = np.array(x, dtype=dtype, copy=True).view(cls)
        obj.owned = True
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.owned = False

    def __array_wrap__(
        self, out: Any, context: Any = None, return_scalar: bool = False
    ) -> Any:
        # Results of ordinary numpy operations on the buffer are plain arrays.
        arr = np.asarray(out)
        return arr[()] if return_scalar else arr


class ScaledPayload(NDArrayOperatorsMixin):
    """What :class:`Gradient` and the sharded gradient of
    :mod:`clipasync.runtime.shards` share: a payload ``g`` times recorded scalars
    (``materialise`` gives ``g·s₁·s₂…``), with ``‖g‖²`` precomputed.

    ``np.dot(g, g)`` of an unscaled payload is that squared norm (no pass); any other
    numpy function, and any other ndarray attribute, is the materialised array's.
    """

    __slots__ = ()
    scalars: tuple[Any, ...]
    squared_norm: Any

    def materialise(self) -> Vector:
        """The plain array ``g·s₁·s₂…``, computed as the pure path would."""
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        # Any other ndarray attribute or method (``copy``, ``astype``, ``T``, ...)
        # is the materialised array's.
        if name.startswith("__") or name in type(self).__slots__:
            raise AttributeError(name)
        return getattr(self.materialise(), name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Vector:
        arr = self.materialise()
        return arr if dtype is None else arr.astype(dtype)

    def __array_function__(
        self, func: Callable[..., Any], types: Any, args: Any, kwargs: Any
    ) -> Any:
        if (
            func is np.dot
            and len(args) == 2
            and args[0] is self
            and args[1] is self
            and not kwargs
            and not self.scalars
            and self.squared_norm is not None
        ):
            return self.squared_norm  # computed by the worker: no pass here
        cls = type(self)
        plain = [a.materialise() if isinstance(a, cls) else a for a in args]
        return func(*plain, **kwargs)


class Gradient(ScaledPayload):
    """A worker's payload ``g`` times recorded scalars, with ``‖g‖²`` precomputed.

    Args:
        data: The payload (read-only, e.g. a zero-copy view of Ray's object store).
        squared_norm: ``np.dot(data, data)`` as the worker computed it.
        scalars: Scalars ``g`` is multiplied by, in order (``data·s₁·s₂…``).
    """

    __slots__ = ("data", "scalars", "squared_norm")

    def __init__(
        self, data: Vector, squared_norm: Any, scalars: tuple[Any, ...] = ()
    ) -> None:
        self.data = data
        self.squared_norm = squared_norm
        self.scalars = scalars

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def size(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def materialise(self) -> Vector:
        """The plain array ``data·s₁·s₂…``, computed as the pure path would."""
        out = self.data
        for s in self.scalars:
            out = out * s
        return out

    def _promotes(self, s: Any) -> bool:
        # ``g * s`` keeps g's dtype for a Python float (NumPy's weak scalars) but
        # not for, e.g., an np.float64: such a product takes the plain path.
        return bool(np.result_type(self.data.dtype, s) != self.data.dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kw: Any) -> Any:
        if method == "__call__" and not kw and len(inputs) == 2:
            a, b = inputs
            if ufunc is np.multiply:
                g, s = (a, b) if a is self else (b, a)
                if g is self and isinstance(s, _SCALAR) and not self._promotes(s):
                    return Gradient(self.data, None, (*self.scalars, s))
            if (
                ufunc is np.subtract
                and b is self
                and isinstance(a, ServerBuffer)
                and a.owned
                and a.shape == self.data.shape
                and self.data.dtype == a.dtype
            ):
                apply_in_place(a, self.data, self.scalars)
                return a
        args = [x.materialise() if isinstance(x, Gradient) else x for x in inputs]
        return getattr(ufunc, method)(*args, **kw)


def apply_in_place(x: Vector, g: Vector, scalars: tuple[Any, ...]) -> None:
    """``x ← x − g·s₁·s₂…`` in place, chunk by chunk, bit-identical to
    ``x - ((g * s₁) * s₂ …)`` (same ufuncs, operand types and order per entry)."""
    n = x.shape[0]
    scratch = np.empty(min(CHUNK, n), dtype=x.dtype)
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        xs, gs = x[lo:hi], g[lo:hi]
        if not scalars:
            np.subtract(xs, gs, out=xs)
            continue
        t = scratch[: hi - lo]
        np.multiply(gs, scalars[0], out=t)
        for s in scalars[1:]:
            np.multiply(t, s, out=t)
        np.subtract(xs, t, out=xs)
