"""Ready-made problems for the paper-reproduction experiments (real data, torch models).

- :func:`fashion_mnist_cnn`: Fashion-MNIST +
  :class:`~clipasync.problems.models.SmallCNN`, the CPU-sized stand-in for the
  paper's CIFAR-10 runs (Figures 2 and 4); optionally split over workers with
  Dirichlet label skew (Figure 4's federated setting).
- :func:`kjv_char_lstm`: King James Bible next-character prediction +
  :class:`~clipasync.problems.models.CharLSTM` (dropout 0.2), the stand-in for
  Figure 3's Shakespeare LSTM; optionally split over workers by book.

Both wrap the model with :class:`clipasync.problems.torch_adaptor.TorchProblem`, which
is imported lazily so that this module imports without it. Model weights are
initialised from ``seed`` without touching torch's global random state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from clipasync.errors import ConfigError
from clipasync.problems.datasets.fashion_mnist import (
    dirichlet_label_partition,
    load_fashion_mnist,
)
from clipasync.problems.datasets.text import load_kjv_char_data, partition_by_book
from clipasync.problems.models import CharLSTM, SmallCNN, seeded, token_cross_entropy

if TYPE_CHECKING:
    from clipasync.problems.torch_adaptor import TorchProblem


@dataclass(frozen=True)
class LabelSkew:
    """Recipe for a Dirichlet label-skew partition of the training set.

    Attributes:
        num_workers: Number of shards (the paper: 16).
        alpha: Dirichlet concentration (the paper's Figure 4: 0.5).
        min_size: Minimum samples per shard.
    """

    num_workers: int = 16
    alpha: float = 0.5
    min_size: int = 10


def _build_model(factory: type[nn.Module], seed: int, **kwargs: object) -> nn.Module:
    """Instantiate ``factory(**kwargs)`` with weights drawn from ``seed`` only."""
    return seeded(seed, lambda: factory(**kwargs))


def _tensors(
    x: npt.NDArray[np.generic], y: npt.NDArray[np.generic]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wrap numpy arrays as CPU tensors without copying."""
    return torch.from_numpy(x), torch.from_numpy(y)


def fashion_mnist_cnn(
    subset: int | None = None,
    width: int = 16,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    partition: LabelSkew | Sequence[npt.ArrayLike] | None = None,
    *,
    hidden: int = 64,
    test_subset: int | None = None,
    eval_subset: int = 1024,
) -> TorchProblem:
    """Fashion-MNIST classification with :class:`~clipasync.problems.models.SmallCNN`.

    Args:
        subset: Use this many training images (stratified, seeded); default all 60k.
        width: First conv layer's channels (114k parameters at 16 with hidden 64).
        batch_size: Minibatch size of one stochastic gradient.
        seed: Seeds the subset selection, the partition and the model weights.
        device: Torch device of the model.
        partition: ``None`` (all workers share the data), a :class:`LabelSkew` recipe
            (drawn with ``np.random.default_rng(seed)``), or explicit per-worker
            training-index arrays.
        hidden: Hidden fully connected width of the CNN (0: none).
        test_subset: Use this many test images (stratified, seeded); default all 10k.
        eval_subset: Training rows ``evaluate`` uses for ``loss``/``accuracy``
            (``TorchProblem``'s fixed evaluation subset); the test set is always
            evaluated whole, so shrink it with ``test_subset`` for quick profiles.

    Returns:
        A ``TorchProblem`` reporting accuracy.

    Raises:
        ConfigError: If Fashion-MNIST is not installed or an argument is invalid.
    """
    from clipasync.problems.torch_adaptor import TorchProblem

    data = load_fashion_mnist(subset=subset, test_subset=test_subset, seed=seed)
    shards: list[npt.NDArray[np.int64]] | None = None
    if isinstance(partition, LabelSkew):
        shards = dirichlet_label_partition(
            data.y_train,
            partition.num_workers,
            partition.alpha,
            partition.min_size,
            np.random.default_rng(seed),
        )
    elif partition is not None:
        shards = [np.asarray(p, dtype=np.int64) for p in partition]
    model = _build_model(SmallCNN, seed, width=width, hidden=hidden)
    return TorchProblem(
        model,
        F.cross_entropy,
        train_data=_tensors(data.x_train, data.y_train),
        test_data=_tensors(data.x_test, data.y_test),
        batch_size=batch_size,
        metrics=("accuracy",),
        device=device,
        seed=seed,
        eval_subset=eval_subset,
        partition=shards,
        name="fashion_mnist_cnn",
    )


def kjv_char_lstm(
    max_chars: int | None = None,
    seq_len: int = 80,
    hidden: int = 128,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    *,
    embed_dim: int = 16,
    num_layers: int = 1,
    dropout: float = 0.2,
    book_partition: int | None = None,
    eval_subset: int = 1024,
) -> TorchProblem:
    """Next-character prediction on the King James Bible with a :class:`CharLSTM`.

    The test data of the problem is the held-out last 10% of every book.

    Args:
        max_chars: Use only the first this many characters (default all 4.1 M).
        seq_len: Characters per sequence (LEAF's Shakespeare uses 80).
        hidden: LSTM hidden size.
        batch_size: Sequences per stochastic gradient.
        seed: Seeds the model weights (and book-deal tie-breaking).
        device: Torch device of the model.
        embed_dim: Character embedding size.
        num_layers: Stacked LSTM layers.
        dropout: Dropout probability (the paper: 0.2).
        book_partition: Split whole books over this many workers (federated use);
            ``None`` shares all data.
        eval_subset: Training sequences ``evaluate`` uses for ``loss`` and
            ``perplexity``; ``test_perplexity`` uses all validation sequences.

    Returns:
        A ``TorchProblem`` reporting perplexity (exp of the mean per-token loss).

    Raises:
        ConfigError: If the corpus package is not installed or an argument is invalid.
    """
    from clipasync.problems.torch_adaptor import TorchProblem

    data = load_kjv_char_data(seq_len, max_chars=max_chars)
    if data.x_train.shape[0] == 0 or data.x_val.shape[0] == 0:
        raise ConfigError(
            f"max_chars={max_chars} leaves no training or validation sequence of "
            f"length {seq_len}"
        )
    shards = None
    if book_partition is not None:
        shards = partition_by_book(
            data.book_train, book_partition, np.random.default_rng(seed)
        )
    model = _build_model(
        CharLSTM,
        seed,
        vocab_size=data.vocab.size,
        embed_dim=embed_dim,
        hidden=hidden,
        num_layers=num_layers,
        dropout=dropout,
    )
    return TorchProblem(
        model,
        token_cross_entropy,
        train_data=_tensors(data.x_train, data.y_train),
        test_data=_tensors(data.x_val, data.y_val),
        batch_size=batch_size,
        metrics=("perplexity",),
        device=device,
        seed=seed,
        eval_subset=eval_subset,
        partition=shards,
        name="kjv_char_lstm",
    )
