"""MNIST-1D with a small MLP: a neural-network problem cheap enough for CPU sweeps.

MNIST-1D (Greydanus & Kobak 2024) is generated procedurally by
``mnist1d.data.make_dataset``: 10 one-dimensional digit templates, padded,
scaled, translated, sheared and noised into length-40 signals. We call the
generator directly (never ``mnist1d.data.get_dataset``, which downloads or writes a
pickle), keep the arrays in memory only, and memoise them per process
(``functools.lru_cache``) so that a sweep of hundreds of runs pays the generation
once.

Sizes (defaults): 5,000 samples (the canonical set: 4,000 train / 1,000 test),
MLP 40 → 100 → 100 → 10 with ReLU, d = 15,210 parameters, minibatch 32. One
stochastic gradient costs about 1 ms with ``torch.set_num_threads(1)`` (0.9–1.8 ms
measured on a shared 2-core box); leaving torch at 2 threads on 2 busy cores was
~10× *slower*, so sweeps should run one thread per process. Generating the data
costs a few seconds once per process (``num_samples=1000`` is ~5× faster).

References:
    S. Greydanus, D. Kobak. "Scaling Down Deep Learning with MNIST-1D". ICML 2024.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from clipasync.errors import ConfigError
from clipasync.problems._common import check_positive_int
from clipasync.problems.models import seeded
from clipasync.problems.torch_adaptor import TorchProblem

#: Length of an MNIST-1D signal and number of classes.
SIGNAL_LENGTH = 40
NUM_CLASSES = 10


@functools.lru_cache(maxsize=4)
def mnist1d_arrays(
    num_samples: int = 5000, data_seed: int = 42
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.int64],
    npt.NDArray[np.float32],
    npt.NDArray[np.int64],
]:
    """Generate MNIST-1D in memory: ``(x_train, y_train, x_test, y_test)``.

    80 % / 20 % train/test split (the generator's ``train_split``); arrays are
    read-only and shared between callers (memoised).

    Note:
        ``mnist1d`` seeds numpy's and Python's *global* generators
        (``np.random.seed``); we save and restore both around the call so that
        generating the data leaves global random state exactly as it was.
    """
    from mnist1d.data import get_dataset_args, make_dataset  # lazy: imports pyplot

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = data_seed
    # Saving/restoring (not drawing from) the legacy global state: mnist1d has no
    # Generator argument and would otherwise clobber the caller's global seeds.
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    out = (
        np.asarray(data["x"], dtype=np.float32),
        np.asarray(data["y"], dtype=np.int64),
        np.asarray(data["x_test"], dtype=np.float32),
        np.asarray(data["y_test"], dtype=np.int64),
    )
    for a in out:
        a.flags.writeable = False
    return out


def mlp(
    in_features: int, hidden: int, out_features: int, depth: int = 2
) -> nn.Sequential:
    """Return ``depth`` hidden ReLU layers of width ``hidden`` and a linear head."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def mnist1d_mlp(
    hidden: int = 100,
    num_samples: int = 5000,
    seed: int = 0,
    batch_size: int = 32,
    *,
    depth: int = 2,
    data_seed: int = 42,
    eval_subset: int = 1000,
    device: str = "cpu",
    partition: Sequence[npt.ArrayLike] | None = None,
) -> TorchProblem:
    """Build the MNIST-1D MLP classification problem (cross-entropy).

    f(θ) = (1/N) Σ_i CE(MLP_θ(x_i), y_i); ``evaluate`` adds ``accuracy`` (on the
    evaluation subset of train) and ``test_accuracy``.

    Args:
        hidden: Width of each hidden layer.
        num_samples: Total samples generated (80 % train, 20 % test).
        seed: Seed of the weight initialisation and the evaluation subset (torch's
            global generator is left untouched).
        batch_size: Minibatch size.
        depth: Number of hidden layers.
        data_seed: Seed of the MNIST-1D generator (42 gives the canonical set).
        eval_subset: Training rows used by ``evaluate``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        partition: Optional per-worker arrays of training-row indices.

    Raises:
        ConfigError: For non-positive sizes or a batch larger than the training set.

    Examples:
        >>> p = mnist1d_mlp(num_samples=200, batch_size=8)
        >>> p.dim  # (40·100 + 100) + (100·100 + 100) + (100·10 + 10)
        15210
    """
    check_positive_int("hidden", hidden)
    check_positive_int("depth", depth)
    n = check_positive_int("num_samples", num_samples)
    if n < 2 * NUM_CLASSES:
        raise ConfigError(f"num_samples must be at least {2 * NUM_CLASSES}, got {n}")
    x_tr, y_tr, x_te, y_te = mnist1d_arrays(n, data_seed)
    model = seeded(seed, lambda: mlp(SIGNAL_LENGTH, hidden, NUM_CLASSES, depth))
    # torch.tensor copies: the cached numpy arrays stay read-only and shared.
    return TorchProblem(
        model,
        nn.CrossEntropyLoss(),
        (torch.tensor(x_tr), torch.tensor(y_tr)),
        (torch.tensor(x_te), torch.tensor(y_te)),
        batch_size=batch_size,
        metrics=("accuracy",),
        device=device,
        seed=seed,
        eval_subset=eval_subset,
        partition=partition,
        name="mnist1d_mlp",
    )
