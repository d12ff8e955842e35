"""Robust linear regression with a bounded-influence, nonconvex loss.

A cheap smooth nonconvex objective for the nonconvex guarantee of Erickson &
Johansson (2026), "Clipping Makes Distributed and Federated Asynchronous SGD Robust
to Stragglers" (arXiv 2606.13287), Theorem 4.2, which bounds
(1/T) Σ_t ‖∇f(x_t)‖ for L-smooth f bounded below; :meth:`RobustRegression.evaluate`
reports ``grad_norm_sq`` = ‖∇f(x)‖², that accuracy measure at one point.

The objective is

    f(x) = (1/N) Σ_i ρ_δ(a_iᵀx − b_i),

with a seeded random design, a_i ~ N(0, I_d), a planted x_true ~ N(0, I_d/d) and
b = A x_true + noise_std·ε, where a share ``outlier_fraction`` of the rows gets a gross
error outlier_scale·N(0, 1) on top. Then a_iᵀx_true ~ N(0, ‖x_true‖²) ≈ N(0, 1): at
x_0 = 0 the residuals straddle the bend of ρ_δ (δ = 1), and
L ≈ (1 + √(d/N))² ≈ 1.2 for the defaults, so stepsizes are of order one.

ρ_δ is one of three redescending losses, each with ρ(0) = ρ'(0) = 0 and ρ''(0) = 1
(least squares ½r² near zero) and a bounded ρ:

==================  ==========================  ===============================
``rho``             ρ_δ(r)                      ρ_δ'(r); range of ρ_δ''
==================  ==========================  ===============================
``geman_mcclure``   (δ²/2)·r²/(δ² + r²)         δ⁴r/(δ² + r²)²; [−1/4, 1]
``cauchy``          (δ²/2)·log(1 + r²/δ²)       r/(1 + r²/δ²); [−1/8, 1]
``welsch``          (δ²/2)·(1 − exp(−r²/δ²))    r·exp(−r²/δ²); [−2e^{−3/2}, 1]
==================  ==========================  ===============================

ρ'' < 0 for |r| beyond δ/√3 (Geman–McClure), δ (Cauchy) or δ/√2 (Welsch), so f is
nonconvex once residuals are that large: outliers are where it bends. Since
|ρ''| ≤ 1, ∇²f = AᵀD A/N with |D| ≤ I and f is L-smooth with
L ≤ λ_max(AᵀA/N) (:attr:`RobustRegression.smoothness`); f ≥ 0 is bounded below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.problems._common import (
    Indices,
    MinibatchMixin,
    check_batch_size,
    check_design,
    check_nonnegative_float,
    check_partition,
    check_positive_float,
    check_positive_int,
    freeze,
)
from clipasync.types import Vector

_F64 = npt.NDArray[np.float64]
Rho = Literal["geman_mcclure", "cauchy", "welsch"]
#: ρ_δ and ρ_δ' of a residual array: ``fn(r, δ²) -> (ρ(r), ρ'(r))``.
_RhoFn = Callable[[_F64, float], tuple[_F64, _F64]]


def _geman_mcclure(r: _F64, d2: float) -> tuple[_F64, _F64]:
    den = d2 + r * r
    return 0.5 * d2 * (r * r) / den, (d2 * d2) * r / (den * den)


def _cauchy(r: _F64, d2: float) -> tuple[_F64, _F64]:
    q = r * r / d2
    return 0.5 * d2 * np.log1p(q), r / (1.0 + q)


def _welsch(r: _F64, d2: float) -> tuple[_F64, _F64]:
    e = np.exp(-(r * r) / d2)
    return 0.5 * d2 * (1.0 - e), r * e


#: ``rho`` name -> (ρ, ρ') of a residual array.
RHOS: dict[str, _RhoFn] = {
    "geman_mcclure": _geman_mcclure,
    "cauchy": _cauchy,
    "welsch": _welsch,
}


class RobustRegression(MinibatchMixin):
    """Robust regression f(x) = (1/N) Σ ρ_δ(a_iᵀx − b_i), smooth and nonconvex.

    See the module docstring for ρ_δ and the smoothness bound.

    Gradients: ∇f(x) = Aᵀρ'(Ax − b)/N and, for a minibatch B of rows,
    g_B(x) = A_Bᵀρ'(A_B x − b_B)/|B|. Minibatches are drawn uniformly with
    replacement (``rng.integers``, one call) unless ``replace=False``; either way
    E[g_B(x)] = ∇f(x). ``initial_point()`` is x_0 = 0. The minimiser is not known in
    closed form (f is nonconvex), so there is no ``suboptimality``.

    Args:
        num_samples: Number of rows N.
        dim: Number of parameters d.
        batch_size: Minibatch size |B| (at most ``num_samples``).
        noise_std: Standard deviation of the inlier label noise.
        outlier_fraction: Share of rows (rounded down) whose label gets a gross
            error, in [0, 1].
        outlier_scale: Standard deviation of the gross error.
        delta: Scale δ > 0 of the loss (residuals beyond ~δ count less).
        rho: ``"geman_mcclure"``, ``"cauchy"`` or ``"welsch"``.
        seed: Seed of the design (A, x_true, noise, which rows are outliers).
        replace: Sample minibatch rows with replacement.
        partition: Optional per-worker row-index arrays (federated runs):
            ``stochastic_grad(x, rng, worker=i)`` then samples only from shard i.
            ``loss``/``grad`` stay global.

    Raises:
        ConfigError: On a non-positive size or δ, a batch larger than the data, a
            share outside [0, 1], a negative noise level, an unknown ``rho`` or an
            invalid partition.

    Examples:
        >>> import numpy as np
        >>> p = RobustRegression(num_samples=100, dim=5, batch_size=10)
        >>> p.stochastic_grad(p.initial_point(), np.random.default_rng(0)).shape
        (5,)
        >>> sorted(p.evaluate(p.initial_point()))
        ['grad_norm', 'grad_norm_sq', 'loss']
    """

    name: str
    dim: int
    seed: int | None

    def __init__(
        self,
        num_samples: int = 2000,
        dim: int = 20,
        batch_size: int = 16,
        noise_std: float = 0.1,
        outlier_fraction: float = 0.1,
        outlier_scale: float = 10.0,
        delta: float = 1.0,
        rho: Rho = "geman_mcclure",
        seed: int = 0,
        *,
        replace: bool = True,
        partition: Sequence[npt.ArrayLike] | None = None,
    ) -> None:
        n = check_positive_int("num_samples", num_samples)
        d = check_positive_int("dim", dim)
        batch = check_batch_size(batch_size, n)
        self.noise_std = check_nonnegative_float("noise_std", noise_std)
        share = check_nonnegative_float("outlier_fraction", outlier_fraction)
        if share > 1.0:
            raise ConfigError(
                f"outlier_fraction must be in [0, 1], got {outlier_fraction!r}"
            )
        self.outlier_fraction = share
        self.outlier_scale = check_nonnegative_float("outlier_scale", outlier_scale)
        rng = np.random.default_rng(seed)
        a = rng.normal(size=(n, d))
        x_true = rng.normal(size=d) / np.sqrt(d)
        b = a @ x_true + self.noise_std * rng.normal(size=n)
        outliers = rng.permutation(n)[: int(share * n)]
        b[outliers] += self.outlier_scale * rng.normal(size=outliers.size)
        self.x_true: _F64 = freeze(x_true)
        self.outliers: Indices = freeze(np.sort(outliers).astype(np.intp))
        self._init(a, b, batch, delta, rho, replace, partition)
        self.seed = seed

    @classmethod
    def from_arrays(
        cls,
        a: npt.ArrayLike,
        b: npt.ArrayLike,
        batch_size: int = 1,
        *,
        delta: float = 1.0,
        rho: Rho = "geman_mcclure",
        replace: bool = True,
        partition: Sequence[npt.ArrayLike] | None = None,
    ) -> RobustRegression:
        """Build the problem for an explicit design ``a`` (N × d) and target ``b``.

        Raises:
            ConfigError: If shapes disagree or an argument is invalid.

        Examples:
            >>> p = RobustRegression.from_arrays([[1.0], [1.0]], [0.0, 2.0])
            >>> p.loss([0.0])  # (1/2)(0 + ½·4/(1 + 4)): Geman–McClure, δ = 1
            0.2
        """
        a64, b64 = check_design(a, b)
        self = cls.__new__(cls)
        batch = check_batch_size(batch_size, a64.shape[0])
        self.noise_std = self.outlier_fraction = self.outlier_scale = 0.0
        self.x_true = freeze(np.full(a64.shape[1], np.nan))
        self.outliers = freeze(np.zeros(0, dtype=np.intp))
        self.seed = None
        self._init(a64, b64, batch, delta, rho, replace, partition)
        return self

    def _init(
        self,
        a: _F64,
        b: _F64,
        batch_size: int,
        delta: float,
        rho: str,
        replace: bool,
        partition: Sequence[npt.ArrayLike] | None,
    ) -> None:
        if rho not in RHOS:
            raise ConfigError(f"unknown rho {rho!r}; choose one of: {', '.join(RHOS)}")
        n, d = a.shape
        self.num_samples = int(n)
        self.dim = int(d)
        self.batch_size = batch_size
        self.delta = check_positive_float("delta", delta)
        self.rho: str = rho
        self._rho = RHOS[rho]
        self._d2 = self.delta * self.delta
        self.replace = bool(replace)
        self.a: _F64 = freeze(np.ascontiguousarray(a))
        self.b: _F64 = freeze(np.ascontiguousarray(b))
        self._shards: tuple[Indices, ...] | None = check_partition(partition, n)
        self._x0: _F64 = freeze(np.zeros(d))
        self.name = "robust_regression"

    @property
    def smoothness(self) -> float:
        """Return λ_max(AᵀA/N), an upper bound on the smoothness constant L of f."""
        gram = self.a.T @ self.a / self.num_samples
        return float(np.linalg.eigvalsh(gram)[-1])

    def loss(self, x: npt.ArrayLike) -> float:
        """Return f(x) = (1/N) Σ ρ_δ(a_iᵀx − b_i) (O(Nd))."""
        r = self.a @ np.asarray(x, dtype=np.float64) - self.b
        return float(np.mean(self._rho(r, self._d2)[0]))

    def grad(self, x: npt.ArrayLike) -> Vector:
        """Return ∇f(x) = Aᵀρ'(Ax − b)/N (O(Nd))."""
        r = self.a @ np.asarray(x, dtype=np.float64) - self.b
        out: _F64 = self._rho(r, self._d2)[1] @ self.a
        out *= 1.0 / self.num_samples
        return out

    def stochastic_grad(
        self, x: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return g_B(x) = A_Bᵀρ'(A_B x − b_B)/|B| for a minibatch B drawn with
        ``rng``.

        Raises:
            ConfigError: If ``worker`` is out of range on a partitioned problem.
        """
        idx = self.minibatch(rng, worker)
        rows = self.a[idx]
        r = rows @ x
        r -= self.b[idx]
        g: _F64 = self._rho(r, self._d2)[1] @ rows
        g *= 1.0 / idx.shape[0]
        return g

    def evaluate(self, x: npt.ArrayLike) -> dict[str, float]:
        """Return ``loss``, ``grad_norm`` = ‖∇f(x)‖ and ``grad_norm_sq`` = ‖∇f(x)‖²
        (the accuracy measure of arXiv 2606.13287, Theorem 4.2, at x)."""
        x64 = np.asarray(x, dtype=np.float64)
        r = self.a @ x64 - self.b
        values, slopes = self._rho(r, self._d2)
        g = slopes @ self.a
        g *= 1.0 / self.num_samples
        sq = float(g @ g)
        return {
            "loss": float(np.mean(values)),
            "grad_norm": float(np.sqrt(sq)),
            "grad_norm_sq": sq,
        }

    def __repr__(self) -> str:
        return (
            f"RobustRegression(num_samples={self.num_samples}, dim={self.dim}, "
            f"batch_size={self.batch_size}, noise_std={self.noise_std}, "
            f"outlier_fraction={self.outlier_fraction}, "
            f"outlier_scale={self.outlier_scale}, delta={self.delta}, "
            f"rho={self.rho!r}, seed={self.seed})"
        )
