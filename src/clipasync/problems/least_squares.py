"""Random least squares, the public experiment of Mishchenko et al. (2022).

The objective is

    f(x) = (1/2N) ||A x − b||² = (1/N) Σ_i ½ (a_iᵀ x − b_i)²,

with a seeded random design: A_ij ~ U[0, 1) / √d, a planted x_true ~ N(0, I_d) and
b = A x_true + noise_std · ε, ε ~ N(0, I_N). Their defaults are N = 10,000 samples,
d = 400, minibatches of 256 and 40 workers.

References:
    K. Mishchenko, F. Bach, M. Even, B. Woodworth. "Asynchronous SGD Beats
    Minibatch SGD Under Arbitrary Delays". NeurIPS 2022 (code:
    github.com/konstmish/asynchronous_sgd).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from clipasync.problems._common import (
    Indices,
    MinibatchMixin,
    check_batch_size,
    check_design,
    check_nonnegative_float,
    check_partition,
    check_positive_int,
    freeze,
)
from clipasync.types import Vector

_F64 = npt.NDArray[np.float64]


class LeastSquares(MinibatchMixin):
    """Least squares f(x) = (1/2N)||Ax − b||² on a seeded random design.

    Gradients:

        ∇f(x) = Aᵀ(Ax − b)/N = H x − c,   H = AᵀA/N,  c = Aᵀb/N,
        g_B(x) = A_Bᵀ(A_B x − b_B)/|B|     (minibatch B of rows).

    ``grad`` uses the precomputed H and c (O(d²) instead of O(Nd)). The
    minibatch gradient gathers the |B| rows once and does two matrix-vector
    products, O(|B| d); it is the simulator's hot loop, so it allocates nothing
    it does not return and keeps no shared scratch buffers (calls from several
    threads are safe).

    Minibatches are drawn uniformly *with* replacement by default
    (``rng.integers``: one call, cheapest); ``replace=False`` uses
    ``rng.choice(..., replace=False)`` as in the reference code. Either way
    E[g_B(x)] = ∇f(x).

    Suboptimality uses the exact identity for quadratics,
    f(x) − f* = ½ (x − x*)ᵀ H (x − x*), with x* from ``numpy.linalg.lstsq`` computed
    once at construction (applied to the normal equations Hx = c, which gives the
    minimum-norm minimiser A⁺b even for a rank-deficient A): it is accurate down to
    round-off in x − x* instead of suffering the cancellation of f(x) − f* near
    the optimum.

    ``initial_point()`` is x_0 = 0.

    Args:
        num_samples: Number of rows N.
        dim: Number of parameters d.
        batch_size: Minibatch size |B| (at most ``num_samples``).
        noise_std: Standard deviation of the label noise (1e-5 in the reference).
        seed: Seed of the design (A, x_true, label noise).
        replace: Sample minibatch rows with replacement.
        partition: Optional per-worker row-index arrays (federated runs):
            ``stochastic_grad(x, rng, worker=i)`` then samples only from shard i.
            ``loss``/``grad`` stay global.

    Raises:
        ConfigError: On a non-positive size, a batch larger than the data, a
            negative ``noise_std`` or an invalid partition.

    Examples:
        >>> import numpy as np
        >>> p = LeastSquares(num_samples=100, dim=5, batch_size=10)
        >>> g = p.stochastic_grad(p.initial_point(), np.random.default_rng(0))
        >>> g.shape
        (5,)
        >>> p.evaluate(p.x_star)["suboptimality"] < 1e-12
        True
    """

    name: str
    dim: int
    seed: int | None

    def __init__(
        self,
        num_samples: int = 10_000,
        dim: int = 400,
        batch_size: int = 256,
        noise_std: float = 1e-5,
        seed: int = 0,
        *,
        replace: bool = True,
        partition: Sequence[npt.ArrayLike] | None = None,
    ) -> None:
        n = check_positive_int("num_samples", num_samples)
        d = check_positive_int("dim", dim)
        self.batch_size = check_batch_size(batch_size, n)
        self.noise_std = check_nonnegative_float("noise_std", noise_std)
        rng = np.random.default_rng(seed)
        a = rng.uniform(size=(n, d)) / np.sqrt(d)
        x_true = rng.normal(size=d)
        b = a @ x_true + self.noise_std * rng.normal(size=n)
        self._init(a, b, replace=replace, partition=partition)
        self.name = "least_squares"
        self.seed = seed

    @classmethod
    def from_arrays(
        cls,
        a: npt.ArrayLike,
        b: npt.ArrayLike,
        batch_size: int = 1,
        *,
        replace: bool = True,
        partition: Sequence[npt.ArrayLike] | None = None,
    ) -> LeastSquares:
        """Build the problem for an explicit design ``a`` (N × d) and target ``b``.

        Raises:
            ConfigError: If shapes disagree or ``batch_size`` is invalid.

        Examples:
            >>> p = LeastSquares.from_arrays([[1.0, 0.0], [0.0, 2.0]], [1.0, 2.0])
            >>> p.loss([0.0, 0.0])  # (1/4)(1² + 2²)
            1.25
        """
        a64, b64 = check_design(a, b)
        self = cls.__new__(cls)
        self.batch_size = check_batch_size(batch_size, a64.shape[0])
        self.noise_std = 0.0
        self.seed = None
        self.name = "least_squares"
        self._init(a64, b64, replace=replace, partition=partition)
        return self

    def _init(
        self,
        a: _F64,
        b: _F64,
        *,
        replace: bool,
        partition: Sequence[npt.ArrayLike] | None,
    ) -> None:
        n, d = a.shape
        self.num_samples = int(n)
        self.dim = int(d)
        self.replace = bool(replace)
        # C-contiguous rows make the minibatch gather a sequence of memcpy's.
        self.a: _F64 = freeze(np.ascontiguousarray(a))
        self.b: _F64 = freeze(np.ascontiguousarray(b))
        self.hessian: _F64 = freeze(self.a.T @ self.a / n)
        self._atb: _F64 = freeze(self.a.T @ self.b / n)
        # lstsq on the d × d normal equations: ~25× faster than lstsq(A, b) at the
        # default size (0.1 s vs 3 s on a loaded 2-core box). It squares the
        # condition number, harmless here: cond(A) ≈ 43 for the default design.
        x_star = np.linalg.lstsq(self.hessian, self._atb, rcond=None)[0]
        self.x_star: _F64 = freeze(x_star)
        self.f_star = self.loss(x_star)
        self._shards: tuple[Indices, ...] | None = check_partition(partition, n)
        self._x0: _F64 = freeze(np.zeros(d))

    def loss(self, x: npt.ArrayLike) -> float:
        """Return f(x) = (1/2N)||Ax − b||² (residual form, O(Nd))."""
        r = self.a @ np.asarray(x, dtype=np.float64) - self.b
        return float(r @ r) / (2.0 * self.num_samples)

    def grad(self, x: npt.ArrayLike) -> Vector:
        """Return ∇f(x) = Hx − c with H = AᵀA/N, c = Aᵀb/N precomputed (O(d²))."""
        out: _F64 = self.hessian @ np.asarray(x, dtype=np.float64) - self._atb
        return out

    def stochastic_grad(
        self, x: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return g_B(x) = A_Bᵀ(A_B x − b_B)/|B| for a minibatch B drawn with ``rng``.

        Args:
            x: Point, shape (d,).
            rng: Source of the minibatch indices (one ``integers`` call).
            worker: Shard to sample from on a partitioned problem.

        Raises:
            ConfigError: If ``worker`` is out of range on a partitioned problem.
        """
        idx = self.minibatch(rng, worker)
        rows = self.a[idx]
        r = rows @ x
        r -= self.b[idx]
        g: _F64 = r @ rows
        g *= 1.0 / idx.shape[0]
        return g

    def stochastic_grad_many(
        self, xs: _F64, rng: np.random.Generator, worker: int | None = None
    ) -> _F64:
        """Return g_B(x_k) for every row x_k of ``xs`` (K × d) from one minibatch B:
        G = ((A_B Xᵀ − b_B 1ᵀ)ᵀ A_B)/|B|, the draw of one :meth:`stochastic_grad`
        (:mod:`clipasync.problems.many`)."""
        idx = self.minibatch(rng, worker)
        rows = self.a[idx]
        r = rows @ xs.T
        r -= self.b[idx][:, None]
        g: _F64 = r.T @ rows
        g *= 1.0 / idx.shape[0]
        return g

    def suboptimality(self, x: npt.ArrayLike) -> float:
        """Return f(x) − f* = ½ (x − x*)ᵀ H (x − x*) (exact for quadratics)."""
        e = np.asarray(x, dtype=np.float64) - self.x_star
        return max(0.0, 0.5 * float(e @ (self.hessian @ e)))

    def evaluate(self, x: npt.ArrayLike) -> dict[str, float]:
        """Return ``loss``, ``grad_norm`` = ||∇f(x)|| and ``suboptimality``."""
        return {
            "loss": self.loss(x),
            "grad_norm": float(np.linalg.norm(self.grad(x))),
            "suboptimality": self.suboptimality(x),
        }

    def evaluate_many(self, xs: _F64) -> list[dict[str, float]]:
        """Return :meth:`evaluate` of every row of ``xs`` (K × d) with one product
        per quantity (``A`` read once for all rows, not once per row)."""
        x = np.asarray(xs, dtype=np.float64)
        r = x @ self.a.T
        r -= self.b
        losses = np.einsum("kn,kn->k", r, r) / (2.0 * self.num_samples)
        g = x @ self.hessian
        g -= self._atb
        e = x - self.x_star
        sub = 0.5 * np.einsum("kd,kd->k", e, e @ self.hessian)
        norms = np.sqrt(np.einsum("kd,kd->k", g, g))
        return [
            {
                "loss": float(losses[k]),
                "grad_norm": float(norms[k]),
                "suboptimality": max(0.0, float(sub[k])),
            }
            for k in range(x.shape[0])
        ]

    def __repr__(self) -> str:
        return (
            f"LeastSquares(num_samples={self.num_samples}, dim={self.dim}, "
            f"batch_size={self.batch_size}, noise_std={self.noise_std}, "
            f"seed={self.seed})"
        )
