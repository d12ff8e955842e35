"""The problem registry: every entry builds, errors are one-line ConfigErrors."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from clipasync.errors import ConfigError
from clipasync.problems import PROBLEMS, Problem, make_problem
from clipasync.problems.noise import WithSubWeibullNoise

SMALL: dict[str, dict[str, Any]] = {
    "least_squares": {"num_samples": 40, "dim": 3, "batch_size": 4},
    "logistic": {"dataset": "iris", "batch_size": 8},
    "mnist1d_mlp": {"num_samples": 200, "hidden": 8, "batch_size": 8},
    "fashion_mnist_cnn": {
        "subset": 100,
        "test_subset": 20,
        "width": 2,
        "hidden": 4,
        "batch_size": 8,
        "eval_subset": 20,
        "partition": {"kind": "dirichlet", "num_workers": 2, "min_size": 5},
    },
    "kjv_char_lstm": {
        "max_chars": 20000,
        "seq_len": 20,
        "hidden": 8,
        "embed_dim": 4,
        "batch_size": 4,
        "eval_subset": 20,
    },
    "robust_regression": {"num_samples": 40, "dim": 3, "batch_size": 4},
    # Your own problems: anything importable (here from installed packages).
    "factory": {
        "factory": "clipasync.problems.least_squares:LeastSquares",
        "args": {"num_samples": 40, "dim": 3, "batch_size": 4},
    },
    "torch": {
        "model": "torch.nn:Linear",
        "model_args": {"in_features": 3, "out_features": 2},
        "data": {
            "train": {
                "function": "sklearn.datasets:make_classification",
                "args": {
                    "n_samples": 40,
                    "n_features": 3,
                    "n_informative": 2,
                    "n_redundant": 0,
                    "random_state": 0,
                },
            }
        },
        "batch_size": 4,
    },
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_every_entry_builds_a_problem(name: str) -> None:
    try:
        p = make_problem(name, **SMALL[name])
    except ConfigError as exc:  # a data package missing outside CI: skip
        if "install" not in str(exc) or os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    assert isinstance(p, Problem)
    x = p.initial_point()
    g1 = p.stochastic_grad(x, np.random.default_rng(0))
    g2 = p.stochastic_grad(x, np.random.default_rng(0))
    assert g1.shape == (p.dim,) and np.array_equal(g1, g2)
    m = p.evaluate(x)
    assert {"loss", "grad_norm"} <= set(m)
    assert np.isfinite(p.loss(x)) and p.grad(x).shape == (p.dim,)


def test_noise_spec_wraps() -> None:
    p = make_problem(
        "least_squares",
        **SMALL["least_squares"],
        noise={"kind": "sub_weibull", "theta": 2.0, "scale": 0.1},
    )
    assert isinstance(p, WithSubWeibullNoise)


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        (
            "quadratic",
            {},
            r"^unknown problem 'quadratic'; choose one of: "
            r"least_squares, logistic, mnist1d_mlp, fashion_mnist_cnn, kjv_char_lstm, "
            r"robust_regression, factory, torch$",
        ),
        ("least_squares", {"batch_size": -1}, "batch_size must be a positive"),
        ("least_squares", {"num_samples": 10, "batch_size": 11}, "batch_size"),
        ("least_squares", {"batchsize": 3}, "batchsize.*accepted arguments"),
        ("logistic", {"dataset": "mnist"}, "choose one of: breast_cancer, digits"),
        ("mnist1d_mlp", {"widht": 3}, "widht"),
        ("least_squares", {"noise": {"kind": "gauss"}}, "unknown noise kind"),
        (
            "least_squares",
            {"noise": {"kind": "sub_weibull", "theta": -1.0, "scale": 1.0}},
            "theta must be a positive",
        ),
    ],
)
def test_errors_are_one_line_config_errors(
    name: str, kwargs: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        make_problem(name, **kwargs)
    assert "\n" not in str(info.value)


def test_importing_problems_does_not_import_torch() -> None:
    code = "import sys, clipasync.problems; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
