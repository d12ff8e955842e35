"""Synthetic heavy-tailed gradient noise added to any stochastic oracle.

The wrappers keep every oracle unbiased (the added noise has mean zero) and change
only its tail, which is what clipping is meant to tame.

Sub-Weibull noise. Draw E ~ Exp(1), put R = s·E^θ and ξ = R·u with u uniform on the
unit sphere (a normalised Gaussian vector). Then

    P(||ξ|| > t) = P(E > (t/s)^{1/θ}) = exp(−(t/s)^{1/θ}),      t ≥ 0,

θ = 1/2 is a Rayleigh-like (sub-Gaussian) tail, θ = 1 exponential, θ > 1
heavier than exponential yet with all moments finite: E||ξ||^k = s^k Γ(kθ + 1), so
E||ξ||² = s² Γ(2θ + 1). With the Orlicz-type definition of a sub-Weibull(θ, σ)
vector, E exp((||ξ||/σ)^{1/θ}) ≤ 2 (Vladimirova et al. 2020; Erickson & Johansson
2026, Assumption 3.2), the norm above has

    E exp((||ξ||/σ)^{1/θ}) = E exp(E·(s/σ)^{1/θ}) = 1 / (1 − (s/σ)^{1/θ}),

which is ≤ 2 exactly when σ ≥ 2^θ s: the smallest constant is σ = 2^θ s
(:func:`sub_weibull_constant`).

Student-t noise: iid coordinates s·T_ν. The mean exists only for ν > 1 (so ν ≤ 1 is
rejected: the oracle would not be unbiased) and the variance s²ν/(ν − 2) only for
ν > 2 (1 < ν ≤ 2 is allowed, with a warning: infinite variance).

Random-number order inside a wrapped ``stochastic_grad``: first the inner
oracle's draws, then the noise, all from the caller's ``rng``; the same rng state
therefore gives the same noisy gradient.

References:
    M. Vladimirova, S. Girard, H. Nguyen, J. Arbel. "Sub-Weibull distributions:
    Generalizing sub-Gaussian and sub-exponential properties to heavier tailed
    distributions". Stat 9(1), 2020.
    E. Erickson, M. Johansson. Clipped asynchronous SGD under heavy-tailed noise
    (2026), Assumption 3.2.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.problems.many import evaluate_rows, many_grad
from clipasync.types import Vector

if TYPE_CHECKING:
    from clipasync.problems.base import Problem

__all__ = [
    "NOISES",
    "WithStudentTNoise",
    "WithSubWeibullNoise",
    "parse_noise_spec",
    "sample_sub_weibull_noise",
    "sub_weibull_constant",
    "sub_weibull_norms",
    "sub_weibull_survival",
    "with_noise",
]


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    out = float(value)
    if not (math.isfinite(out) and out > 0.0):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    return out


def sub_weibull_norms(
    rng: np.random.Generator,
    size: int | tuple[int, ...] | None,
    theta: float,
    scale: float,
) -> npt.NDArray[np.float64]:
    """Draw norms R = s·E^θ with E ~ Exp(1), so P(R > t) = exp(−(t/s)^{1/θ}).

    Args:
        rng: Random source.
        size: Output shape (``None`` for a 0-d array).
        theta: Tail parameter θ > 0 (larger is heavier).
        scale: Scale s > 0.

    Raises:
        ConfigError: If ``theta`` or ``scale`` is not positive.

    Examples:
        >>> r = sub_weibull_norms(np.random.default_rng(0), 3, theta=1.0, scale=2.0)
        >>> r.shape, bool((r > 0).all())
        ((3,), True)
    """
    th = _positive("theta", theta)
    s = _positive("scale", scale)
    out: npt.NDArray[np.float64] = s * np.power(rng.standard_exponential(size), th)
    return out


def sub_weibull_survival(
    t: npt.ArrayLike, theta: float, scale: float
) -> npt.NDArray[np.float64]:
    """Return P(R > t) = exp(−(max(t, 0)/s)^{1/θ}), R from :func:`sub_weibull_norms`."""
    th = _positive("theta", theta)
    s = _positive("scale", scale)
    tt = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
    out: npt.NDArray[np.float64] = np.exp(-np.power(tt / s, 1.0 / th))
    return out


def sub_weibull_constant(theta: float, scale: float) -> float:
    """Return σ = 2^θ s, the smallest σ with E exp((R/σ)^{1/θ}) ≤ 2 (module doc)."""
    return float(2.0 ** _positive("theta", theta) * _positive("scale", scale))


def sample_sub_weibull_noise(
    rng: np.random.Generator, dim: int, theta: float, scale: float
) -> npt.NDArray[np.float64]:
    """Draw ξ = s·E^θ·u, u uniform on the unit sphere of R^dim (mean zero).

    Draws, in order, ``dim`` standard normals (the direction) and one exponential.

    Raises:
        ConfigError: If ``dim`` is not a positive integer or θ, s not positive.
    """
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise ConfigError(f"dim must be a positive integer, got {dim!r}")
    th = _positive("theta", theta)
    s = _positive("scale", scale)
    u = rng.standard_normal(int(dim))
    radius = s * rng.standard_exponential() ** th
    u *= radius / np.linalg.norm(u)
    return u


class _NoisyProblem:
    """Delegate everything to ``problem``; add noise in ``stochastic_grad``."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.dim: int = problem.dim
        self.name: str = problem.name

    def _noise(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        raise NotImplementedError

    def initial_point(self) -> Vector:
        """Return the wrapped problem's x_0."""
        return self.problem.initial_point()

    def loss(self, x: Vector) -> float:
        """Return the wrapped problem's f(x) (the noise has mean zero)."""
        return self.problem.loss(x)

    def grad(self, x: Vector) -> Vector:
        """Return the wrapped problem's ∇f(x)."""
        return self.problem.grad(x)

    def stochastic_grad(
        self, x: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return g(x) + ξ: the inner stochastic gradient, then fresh noise."""
        g = self.problem.stochastic_grad(x, rng, worker)
        out: Vector = g + self._noise(rng).astype(g.dtype, copy=False)
        return out

    def stochastic_grad_many(
        self, xs: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return g(x_k) + ξ for every row x_k: the inner batched gradients, then
        one fresh noise vector added to every row (common random numbers)."""
        g = many_grad(self.problem)(xs, rng, worker)
        out: Vector = g + self._noise(rng).astype(g.dtype, copy=False)[None, :]
        return out

    def evaluate_many(self, xs: Vector) -> list[dict[str, float]]:
        """Return the wrapped problem's metrics of every row."""
        return evaluate_rows(self.problem, xs)

    def evaluate(self, x: Vector) -> dict[str, float]:
        """Return the wrapped problem's metrics."""
        return self.problem.evaluate(x)

    def __getattr__(self, attr: str) -> Any:
        # Only reached for attributes not found normally (num_shards, x_star, ...).
        # Guard private names so unpickling (no __dict__ yet) cannot recurse.
        if attr.startswith("_") or "problem" not in self.__dict__:
            raise AttributeError(attr)
        return getattr(self.__dict__["problem"], attr)


class WithSubWeibullNoise(_NoisyProblem):
    """Add sub-Weibull noise ξ = s·E^θ·u to every stochastic gradient.

    g̃(x) = g(x) + ξ with P(||ξ|| > t) = exp(−(t/s)^{1/θ}); E ξ = 0, so g̃ is
    unbiased whenever g is. Sub-Weibull(θ, σ) with σ = 2^θ s (see the module doc).

    Args:
        problem: Any :class:`~clipasync.problems.base.Problem`.
        theta: Tail parameter θ > 0.
        scale: Scale s > 0 of the noise norm.

    Raises:
        ConfigError: If θ or s is not positive.

    Examples:
        >>> from clipasync.problems import LeastSquares
        >>> p = WithSubWeibullNoise(LeastSquares(100, 5, 10), theta=2.0, scale=0.1)
        >>> p.stochastic_grad(p.initial_point(), np.random.default_rng(0)).shape
        (5,)
    """

    def __init__(self, problem: Problem, theta: float, scale: float) -> None:
        super().__init__(problem)
        self.theta = _positive("theta", theta)
        self.scale = _positive("scale", scale)
        self.name = f"{problem.name}+sub_weibull(theta={self.theta:g},s={self.scale:g})"

    @property
    def sigma(self) -> float:
        """The sub-Weibull constant σ = 2^θ s."""
        return sub_weibull_constant(self.theta, self.scale)

    def _noise(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        return sample_sub_weibull_noise(rng, self.dim, self.theta, self.scale)


class WithStudentTNoise(_NoisyProblem):
    """Add iid Student-t coordinates s·T_ν to every stochastic gradient.

    E[s T_ν] = 0 for ν > 1; Var = s² ν/(ν − 2) per coordinate for ν > 2, infinite
    for 1 < ν ≤ 2 (allowed, with a warning). P(|T_ν| > t) ~ C t^{−ν}: a polynomial
    tail, heavier than any sub-Weibull one.

    Args:
        problem: Any :class:`~clipasync.problems.base.Problem`.
        df: Degrees of freedom ν > 1.
        scale: Scale s > 0.

    Raises:
        ConfigError: If ν ≤ 1 (the mean is undefined) or s is not positive.
    """

    def __init__(self, problem: Problem, df: float, scale: float) -> None:
        super().__init__(problem)
        self.df = _positive("df", df)
        if self.df <= 1.0:
            raise ConfigError(
                f"df must be > 1 (the Student-t mean is undefined otherwise), got {df}"
            )
        if self.df <= 2.0:
            warnings.warn(
                f"Student-t noise with df={self.df:g} <= 2 has infinite variance",
                stacklevel=2,
            )
        self.scale = _positive("scale", scale)
        self.name = f"{problem.name}+student_t(df={self.df:g},s={self.scale:g})"

    def _noise(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = self.scale * rng.standard_t(self.df, self.dim)
        return out


#: Noise kind (the ``kind`` of a noise spec) -> wrapper class.
NOISES: dict[str, Callable[..., _NoisyProblem]] = {
    "sub_weibull": WithSubWeibullNoise,
    "student_t": WithStudentTNoise,
}


class _Placeholder:
    """Stand-in problem used only to validate a spec's values before building."""

    dim = 1
    name = "placeholder"


def parse_noise_spec(
    spec: Mapping[str, Any] | None,
) -> Callable[[Problem], Problem]:
    """Validate a noise spec now and return the function that applies it.

    Lets a config layer reject a bad spec before it builds an expensive problem.
    ``None`` gives the identity.

    Raises:
        ConfigError: Missing or unknown ``kind``, unknown or missing arguments, or
            invalid values (e.g. ``theta <= 0``).
    """
    if spec is None:
        return lambda problem: problem
    if not isinstance(spec, Mapping) or "kind" not in spec:
        raise ConfigError(
            f"noise must be a mapping with a 'kind' ({', '.join(NOISES)}), got {spec!r}"
        )
    params = dict(spec)
    kind = params.pop("kind")
    if kind not in NOISES:
        raise ConfigError(
            f"unknown noise kind {kind!r}; choose one of: {', '.join(NOISES)}"
        )
    factory = NOISES[kind]
    try:
        inspect.signature(factory).bind(_Placeholder(), **params)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(factory).parameters if p != "problem"]
        raise ConfigError(
            f"noise {kind!r}: {exc}; accepted arguments: {', '.join(accepted)}"
        ) from None
    with warnings.catch_warnings():  # warnings are raised again at the real build
        warnings.simplefilter("ignore")
        factory(_Placeholder(), **params)
    return lambda problem: factory(problem, **params)


def with_noise(problem: Problem, spec: Mapping[str, Any] | None) -> Problem:
    """Wrap ``problem`` according to a config spec; ``None`` returns it unchanged.

    A spec is a mapping with ``kind`` (a key of :data:`NOISES`) and that wrapper's
    keyword arguments, e.g. ``{"kind": "sub_weibull", "theta": 2, "scale": 1.0}`` or
    ``{"kind": "student_t", "df": 3, "scale": 0.5}``.

    Raises:
        ConfigError: Missing or unknown ``kind``, or unknown/missing arguments.

    Examples:
        >>> from clipasync.problems import LeastSquares
        >>> p = with_noise(LeastSquares(100, 5, 10), {"kind": "student_t", "df": 3,
        ...                                           "scale": 0.1})
        >>> type(p).__name__
        'WithStudentTNoise'
    """
    return parse_noise_spec(spec)(problem)
